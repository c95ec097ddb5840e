"""Issue 18 item 4: another service runs an import without our Python, first time.

The test reads the command block of docs/contract.md ("Running an import from another
service"), fills in the ids and runs each command with the `temporal` CLI, in order.
"""

from __future__ import annotations

import json
import re
import shlex
import uuid
from pathlib import Path

import asyncpg
from temporalio.client import Client

from folksjobs.events import ImportCsvConfirmed, dispatch
from folksjobs.imports import repo as imports_repo
from folksjobs.models import WF_PROCESS_CSV, import_workflow_id
from tests.callers import cli_start, failure_of, result_of, temporal
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, import_row, upload

CONTRACT = Path(__file__).resolve().parent.parent / "docs" / "contract.md"


def contract_commands() -> list[list[str]]:
    """The sh block of the contract's import sequence, one argv per command."""
    text = CONTRACT.read_text()
    section = text.split("## Running an import from another service", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "docs/contract.md lost its import sequence"
    lines = block.group(1).replace("\\\n", " ").strip().splitlines()
    return [shlex.split(line) for line in lines]


async def test_the_contract_import_sequence_runs_with_the_cli_only(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        rows = [["email", "first_name"], ["ann@example.com", "Ann"], ["bob@example.com", "Bob"]]
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        assert (await import_row(owner_pool, up.import_id))["status"] == "pending"
        values = {"<import_id>": up.import_id, "<workspace_id>": tenant.workspace_id,
                  "<user_id>": tenant.user_id}  # fmt: skip
        outputs = []
        for argv in contract_commands():
            assert argv[0] == "temporal"
            args = [_fill(a, values) for a in argv[1:]]
            if args[:2] == ["workflow", "start"]:
                args[args.index("--task-queue") + 1] = task_queue  # this test's worker
            if args[:2] == ["workflow", "result"]:
                args += ["-o", "json"]
            outputs.append(await temporal(stack, *args))
    result = json.loads(outputs[-1])
    assert result["status"] == "COMPLETED", result
    assert result["result"]["inserted"] == 2
    row = await import_row(owner_pool, up.import_id)
    assert row["status"] == "completed" and row["inserted_rows"] == 2


def _fill(arg: str, values: dict[str, str]) -> str:
    for k, v in values.items():
        arg = arg.replace(k, v)
    return arg


async def test_dispatch_of_a_pending_import_runs_it(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """What docs/contract.md used to lead a service to: `dispatch import/csv.confirmed` on a
    pending import failed with "Invalid import state: pending"."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                          csv_bytes([["email"], ["c@example.com"]]))  # fmt: skip
        event = ImportCsvConfirmed(import_id=uuid.UUID(up.import_id),
                                   workspace_id=uuid.UUID(tenant.workspace_id),
                                   user_id=uuid.UUID(tenant.user_id))  # fmt: skip
        d = await dispatch(client, settings, event, pool=services.pool)
        result = await result_of(client.get_workflow_handle(d.workflow_id))
    assert result["status"] == "completed" and result["inserted"] == 1


async def test_a_start_refused_on_state_can_be_retried_once_fixed(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """No column mapped to email refuses the start and leaves the record pending; with the
    mapping fixed, the same import id starts a fresh run (ALLOW_DUPLICATE_FAILED_ONLY)."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        data = csv_bytes([["col_a", "col_b"], ["a@example.com", "A"], ["b@example.com", "B"]])
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, data)
        assert "email" not in up.mapping
        wid = import_workflow_id(up.import_id)
        args = {"import_id": up.import_id, "workspace_id": tenant.workspace_id,
                "user_id": tenant.user_id}  # fmt: skip
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, args)
        err = await failure_of(client.get_workflow_handle(wid), 20)
        assert err.type == "ImportRefused" and "no column is mapped to email" in str(err)
        assert (await import_row(owner_pool, up.import_id))["status"] == "pending"
        assert await imports_repo.set_mapping(
            services.pool, tenant.workspace_id, up.import_id, ["email", "skip"]
        )
        await cli_start(stack, WF_PROCESS_CSV, wid, task_queue, args)
        out = await temporal(stack, "workflow", "result", "--workflow-id", wid, "-o", "json")
    assert json.loads(out)["status"] == "COMPLETED"
    assert (await import_row(owner_pool, up.import_id))["status"] == "completed"
