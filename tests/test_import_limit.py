"""At most IMPORTS_PER_WORKSPACE_LIMIT imports run per workspace, the rest in order (spec 003).

Read back from the gate's own history, so the check does not depend on timing: every
grant, every release, in the order the gate made them. Skipped until ProcessCsv takes a
slot (`held_slot` from workflows/gate.py).
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

import workflows.import_csv
from folksjobs.confirm import confirm_import
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload
from workflows.gate import IMPORT_GATE, granted_signal

pytestmark = pytest.mark.skipif(
    "held_slot" not in inspect.getsource(workflows.import_csv),
    reason="ProcessCsv does not take a per-workspace slot yet (workflows/gate.py held_slot)",
)


async def gate_log(client: Client, gate_id: str) -> list[tuple[str, str]]:
    """("acquire" | "grant" | "release", holder workflow id), in history order."""
    out: list[tuple[str, str]] = []
    updates: dict[str, str] = {}  # update id -> holder
    async for e in client.get_workflow_handle(gate_id).fetch_history_events():
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            a = e.workflow_execution_signaled_event_attributes
            body: dict[str, Any] = json.loads(a.input.payloads[0].data)
            out.append((a.signal_name, body["holder_id"]))
        elif e.event_type == EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            b = e.signal_external_workflow_execution_initiated_event_attributes
            if b.signal_name == granted_signal(IMPORT_GATE):
                out.append(("grant", b.workflow_execution.workflow_id))
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            # request-slot-now: the acquire-now update, granted in its answer when True.
            req = e.workflow_execution_update_accepted_event_attributes.accepted_request
            body = json.loads(req.input.args.payloads[0].data)
            updates[req.meta.update_id] = body["holder_id"]
            out.append(("acquire", body["holder_id"]))
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            c = e.workflow_execution_update_completed_event_attributes
            if json.loads(c.outcome.success.payloads[0].data) is True:
                out.append(("grant", updates[c.meta.update_id]))
    return out


async def test_imports_of_one_workspace_run_one_at_a_time_in_order(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, imports_per_workspace_limit=1)
    data = csv_bytes([["email"], *[[f"p{i}@example.com"] for i in range(5)]])
    async with running_worker(client, settings, task_queue) as services:
        live = settings.model_copy(update={"temporal_task_queue": task_queue})
        ups = [await upload(services, live, tenant.workspace_id, tenant.user_id, data)
               for _ in range(3)]  # fmt: skip
        handles = [
            await confirm_import(client, services.pool, live, tenant.workspace_id, u.import_id)
            for u in ups
        ]
        results: list[dict[str, Any]] = [await h.result() for h in handles]  # type: ignore[misc]
    assert [r["status"] for r in results] == ["completed"] * 3
    log = await gate_log(client, f"{IMPORT_GATE}-{tenant.workspace_id}")
    holding: set[str] = set()
    granted: list[str] = []
    for kind, holder in log:
        if kind == "grant" and holder not in holding:
            holding.add(holder)
            granted.append(holder)
            assert len(holding) <= 1, log
        elif kind == "release":
            holding.discard(holder)
    # Served in confirmation order (the gate orders waiters by their run's start time, not
    # by when their acquire arrived: check-import runs first and may finish out of order),
    # and every import was served.
    assert granted == [h.id for h in handles]
    assert sorted(granted) == sorted(h.id for h in handles)
