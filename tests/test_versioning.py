"""Worker Deployment versioning against the bundled dev server: a rolling upgrade.

An import started on version 1 stays pinned there, through its continue-as-new runs, and
finishes on version 1's worker while version 2 is current; a welcome started after the
switch runs on version 2.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from folksjobs import BUILD_ID
from folksjobs.confirm import confirm_import
from folksjobs.infra.versioning import deployment_config
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload


def test_off_unless_a_deployment_name_is_set(stack: Stack) -> None:
    assert deployment_config(make_settings(stack)) is None
    on = deployment_config(make_settings(stack, worker_deployment_name="folksjobs"))
    assert on is not None and on.use_worker_versioning
    assert on.version.to_canonical_string() == f"folksjobs.{BUILD_ID}"


async def make_current(client: Client, settings: Settings) -> None:
    """Set the version current once its worker has polled (the server learns it then)."""
    assert settings.worker_deployment_name
    for _ in range(100):
        try:
            await client.workflow_service.set_worker_deployment_current_version(
                SetWorkerDeploymentCurrentVersionRequest(
                    namespace=client.namespace,
                    deployment_name=settings.worker_deployment_name,
                    build_id=settings.worker_build_id,
                )
            )
            return
        except RPCError:
            await asyncio.sleep(0.1)
    raise AssertionError(f"version {settings.worker_build_id} never became known")


async def versioning(handle: WorkflowHandle[Any, Any]) -> tuple[int, str]:
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    return info.behavior, info.deployment_version.build_id


async def test_rolling_upgrade_keeps_imports_pinned_and_moves_new_runs(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    deployment = f"folksjobs-{uuid.uuid4().hex[:8]}"
    v1, v2 = (
        make_settings(
            stack,
            temporal_task_queue=task_queue,
            worker_deployment_name=deployment,
            worker_build_id=build,
            import_chunk_rows=1,
            import_parallel_chunks=1,
            import_chunks_per_run=15,
        )
        for build in ("1.0", "2.0")
    )
    rows = [["email"]] + [[f"v{i}@example.com"] for i in range(45)]
    async with running_worker(client, v1, task_queue) as services:
        await make_current(client, v1)
        up = await upload(services, v1, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        imp = await confirm_import(client, services.pool, v1, tenant.workspace_id, up.import_id)
        while True:
            if (await imp.query("progress"))["chunks_done"] >= 2:
                break
            await asyncio.sleep(0.05)
        async with running_worker(client, v2, task_queue):
            await make_current(client, v2)
            welcome = await client.start_workflow(
                WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id),
                id=f"welcome-{uuid.uuid4()}", task_queue=task_queue,
            )  # fmt: skip
            await welcome.result()
            result: dict[str, Any] = await imp.result()  # type: ignore[assignment]
    assert result["inserted"] == 45
    # Its latest run (45 chunks, 15 a run) continued from an earlier one and is still on 1.0.
    started = (await imp.fetch_history()).events[0].workflow_execution_started_event_attributes
    assert started.continued_execution_run_id
    assert await versioning(imp) == (VersioningBehavior.VERSIONING_BEHAVIOR_PINNED, "1.0")
    assert await versioning(welcome) == (
        VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE,
        "2.0",
    )
