"""The gRPC contract: committed docs are current, and the `temporal` CLI (a gRPC client
nobody here wrote) starts each workflow with raw JSON built from the committed schemas and
reads its result and queries back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio import workflow as wf
from temporalio.client import Client

from folksjobs import catalog
from folksjobs.devtools import contract
from folksjobs.devtools.devstack import temporal_cli
from folksjobs.models import WF_ENRICH_AVATARS, WF_IMPORT_GATE, GateState
from folksjobs.settings import ROOT
from starter.contract import generate
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.jobcases import CASES
from worker import all_workflows

REGISTERED = {wf._Definition.must_from_class(c).name: c for c in all_workflows()}


def test_committed_contract_is_up_to_date() -> None:
    stale = contract.stale(ROOT, generate())
    assert stale == [], f"stale contract files {stale}: run `python -m starter contract`"


def test_every_registered_workflow_is_in_the_catalog() -> None:
    documented = {spec.workflow for spec in catalog.JOBS} | {WF_IMPORT_GATE, WF_ENRICH_AVATARS}
    assert set(REGISTERED) <= documented


@pytest.mark.parametrize("spec", catalog.JOBS, ids=[s.workflow for s in catalog.JOBS])
def test_retry_counts_agree_in_catalog_workflow_and_docs(spec: catalog.JobSpec) -> None:
    """The spec's retry count is written once (the catalog): the workflow's retry policy,
    its docstring and docs/contract.md all say the same."""
    if spec.workflow not in REGISTERED:
        pytest.skip(f"{spec.workflow} is not registered in worker.JOBS yet (job not merged)")
    module = sys.modules[REGISTERED[spec.workflow].__module__]
    assert module.RETRY.maximum_attempts == spec.attempts == spec.retries + 1
    assert f"retries {spec.retries} => at most {spec.attempts}" in " ".join(
        (module.__doc__ or "").split()
    )
    section = (ROOT / contract.CONTRACT).read_text().split(f"### {spec.workflow}\n")[1]
    line = f"- retries: {spec.retries} (each activity: at most {spec.attempts} attempts)"
    assert line in section.split("\n### ")[0]


def cli(stack: Stack, *args: str) -> Any:
    proc = subprocess.run(
        [temporal_cli(), *args, "--address", stack.temporal.address, "--output", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def raw_input(model_name: str, values: dict[str, Any]) -> str:
    """The start input, shaped by the committed JSON Schema (not by the Python model)."""
    schema = json.loads((ROOT / contract.SCHEMA_DIR / f"{model_name}.json").read_text())
    missing = [f for f in schema.get("required", []) if f not in values]
    assert not missing, f"test has no value for required {missing}"
    return json.dumps({k: v for k, v in values.items() if k in schema["properties"]})


def _queries(workflow: str) -> list[str]:
    defn = wf._Definition.must_from_class(REGISTERED[workflow])
    return sorted(n for n in defn.queries if n and not n.startswith("__"))


@pytest.mark.parametrize("spec", catalog.JOBS, ids=[s.workflow for s in catalog.JOBS])
async def test_started_and_read_back_with_the_temporal_cli(
    spec: catalog.JobSpec, client: Client, stack: Stack, tenant: Tenant,
    owner_pool: asyncpg.Pool, task_queue: str,
) -> None:  # fmt: skip
    if spec.workflow not in REGISTERED:
        pytest.skip(f"{spec.workflow} is not registered in worker.JOBS yet (job not merged)")
    case = CASES[spec.workflow]
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue) as services:
        wid, values = await case.setup(tenant, owner_pool, services)
        out = await asyncio.to_thread(
            cli, stack, "workflow", "execute", "--type", spec.workflow,
            "--task-queue", task_queue, "--workflow-id", wid,
            "--input", raw_input(spec.input.__name__, values),
        )  # fmt: skip
        assert out["status"] == "COMPLETED", out
        case.check(out["result"])
        for query in _queries(spec.workflow):
            answer = await asyncio.to_thread(
                cli, stack, "workflow", "query", "--workflow-id", wid, "--type", query
            )
            assert answer["queryResult"], (query, answer)


async def test_gate_started_signalled_and_queried_with_the_temporal_cli(
    client: Client, stack: Stack, migrated: str, task_queue: str
) -> None:
    key, other = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    wid, holder = f"import-gate-{key}", f"import-gate-{other}"
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue):
        for gate_key, gate_id in ((key, wid), (other, holder)):
            start = raw_input("GateInput", {"gate": "import-gate", "key": gate_key, "limit": 2})
            await asyncio.to_thread(
                cli, stack, "workflow", "start", "--type", WF_IMPORT_GATE,
                "--task-queue", task_queue, "--workflow-id", gate_id, "--input", start,
            )  # fmt: skip
        # Any running workflow can hold a slot; here the other gate (it buffers the grant).
        request = raw_input("SlotRequest", {"gate": "import-gate", "key": key, "holder_id": holder})
        await asyncio.to_thread(
            cli, stack, "workflow", "signal", "--workflow-id", wid, "--name", "acquire",
            "--input", request,
        )  # fmt: skip
        state: dict[str, Any] = {}
        for _ in range(100):  # the signal's workflow task may not have run yet
            answer = await asyncio.to_thread(
                cli, stack, "workflow", "query", "--workflow-id", wid, "--type", "state"
            )
            [state] = answer["queryResult"]
            if state["holders"]:
                break
            await asyncio.sleep(0.1)
        for gate_id in (wid, holder):
            await client.get_workflow_handle(gate_id).terminate("test over")
    # The CLI prints an empty JSON array as null.
    state = {k: [] if v is None else v for k, v in state.items()}
    assert GateState.model_validate(state) == GateState(
        gate="import-gate", key=key, limit=2, holders=[holder], waiting=[]
    )
