"""Temporal's Priority and Fairness on a workspace's jobs (issue 27, item 1): the import
starts with its workspace as fairness key and the weight of its settings, a person's
priority; its chunk processing runs at the bulk priority."""

from __future__ import annotations

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from folksjobs.confirm import confirm_import
from folksjobs.infra.fairness import Lane
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload


async def test_an_import_carries_its_workspace_priority(
    stack: Stack, migrated: str, client: Client, tenant: Tenant, task_queue: str,
    owner_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        import_chunk_rows=5,
        import_inline_max_rows=0,
        fairness_weights={tenant.workspace_id: 2.5},
    )
    rows = [["email"]] + [[f"f{i}@example.com"] for i in range(12)]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        await handle.result()
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.priority
    assert (started.priority_key, started.fairness_key, started.fairness_weight) == (
        Lane.USER,
        tenant.workspace_id,
        2.5,
    )
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name: (
            e.activity_task_scheduled_event_attributes.priority
        )
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    # Only the key is set on process-batch: the fairness key and weight are inherited.
    assert scheduled["process-batch"].priority_key == Lane.BULK
    assert scheduled["process-batch"].fairness_key == ""
    assert scheduled["download-and-chunk"].priority_key == 0  # the workflow's, inherited
