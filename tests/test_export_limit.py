"""At most EXPORTS_PER_WORKSPACE_LIMIT exports of a workspace at once; the others wait in
order of confirmation (the import gate's mechanism, workflows/gate.py), and a cancelled
one leaves no file behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from activities.gate import GateActivities
from folksjobs.exports import repo as exports
from folksjobs.infra.blob import export_key
from folksjobs.models import GateState
from folksjobs.services import open_services
from tests.conftest import Stack, Tenant, make_settings
from tests.exporting import contact, seed_contacts, start_export
from tests.test_export_faults import HoldingExportActivities
from tests.test_gate import eventually
from workflows.export_csv import ProcessExport
from workflows.gate import EXPORT_GATE, SlotGate


async def test_exports_beyond_the_limit_wait_in_order(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    await seed_contacts(
        owner_pool, tenant.workspace_id, [contact(f"c{i}@example.com") for i in range(20)]
    )
    settings = make_settings(stack)
    async with open_services(settings, pool_size=4) as s:
        a = HoldingExportActivities(s.pool, s.blob, s.email, s.settings)
        a.reached = asyncio.Event()
        gate = GateActivities({EXPORT_GATE: 1}).activities()
        async with Worker(client, task_queue=task_queue, workflows=[ProcessExport, SlotGate],
                          activities=[*a.activities(), *gate]):  # fmt: skip
            first = await start_export(client, s.pool, task_queue, tenant.workspace_id,
                                       heartbeat=2.0)  # fmt: skip
            await asyncio.wait_for(a.reached.wait(), timeout=60)
            a.reached.clear()
            second = await start_export(client, s.pool, task_queue, tenant.workspace_id,
                                        heartbeat=2.0)  # fmt: skip
            third = await start_export(client, s.pool, task_queue, tenant.workspace_id,
                                       heartbeat=2.0)  # fmt: skip

            async def queued() -> bool:
                state = await gate_state_of(client, tenant.workspace_id)
                return state.waiting == [second.id, third.id]

            await eventually(queued, "the second and third exports wait, in order")
            state = await gate_state_of(client, tenant.workspace_id)
            assert (state.limit, state.holders) == (1, [first.id])
            progress = await second.query("progress")
            assert progress["stage"] == "waiting"
            # The first one cancelled: its slot goes to the second, the third still waits.
            await first.cancel()
            await asyncio.wait_for(a.reached.wait(), timeout=60)
            state = await gate_state_of(client, tenant.workspace_id)
            assert (state.holders, state.waiting) == ([second.id], [third.id])
            for h in (second, third):
                await h.cancel()
            for h in (first, second, third):
                with pytest.raises(WorkflowFailureError):
                    await h.result()
    for h in (first, second, third):
        export_id = h.id.removeprefix("export-")
        record = await exports.get_export(owner_pool, export_id)
        assert record["status"] == "cancelled", record
        final = Path(settings.blob_url) / export_key(tenant.workspace_id, export_id)
        assert not final.exists()
        assert not list(final.parent.glob(f".{final.name}.*.part"))


async def gate_state_of(client: Client, workspace_id: str) -> GateState:
    handle = client.get_workflow_handle(f"{EXPORT_GATE}-{workspace_id}")
    return await handle.query(SlotGate.state)
