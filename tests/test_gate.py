"""The concurrency gate (workflows/gate.py) with a dummy holder: limit, order, release paths."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError
from temporalio.worker import Worker

from activities.gate import GateActivities
from folksjobs.confirm import confirm_import
from folksjobs.infra import ui
from folksjobs.models import WF_IMPORT_GATE, GateInput, GateState, SlotRelease, SlotRequest
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.gate_holder import GateHolder
from tests.importing import csv_bytes, upload
from workflows.gate import IMPORT_GATE, SlotGate


@asynccontextmanager
async def gate_worker(client: Client, task_queue: str, limit: int) -> AsyncIterator[None]:
    # A tiny run length: the five-holder test crosses two continue-as-new of the gate.
    acts = GateActivities({IMPORT_GATE: limit}, idle_seconds=1, check_seconds=1, grants_per_run=2)
    async with Worker(client, task_queue=task_queue, workflows=[SlotGate, GateHolder],
                      activities=acts.activities()):  # fmt: skip
        yield


async def eventually(check: Callable[[], Awaitable[bool]], what: str, limit: float = 60) -> None:
    """Wait until `check()` holds; the limit only keeps a broken run from hanging."""
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.1)


async def gate_state(client: Client, key: str) -> GateState:
    return await client.get_workflow_handle_for(SlotGate.run, f"import-gate-{key}").query(
        SlotGate.state
    )


async def stage(h: WorkflowHandle[GateHolder, str]) -> str:
    return await h.query(GateHolder.progress)


async def start_in_order(client: Client, task_queue: str, key: str,
                         n: int) -> list[WorkflowHandle[GateHolder, str]]:  # fmt: skip
    handles = []
    for i in range(n):
        h = await client.start_workflow(GateHolder.run, key, id=f"holder-{key}-{i}",
                                        task_queue=task_queue)  # fmt: skip
        handles.append(h)

        async def queued(wid: str = h.id) -> bool:
            try:
                s = await gate_state(client, key)
            except RPCError:  # the gate is not started yet
                return False
            return wid in s.holders + s.waiting

        await eventually(queued, f"{h.id} reaches the gate")
    return handles


async def test_at_most_limit_hold_and_the_rest_wait_in_order(client: Client,
                                                             task_queue: str) -> None:  # fmt: skip
    key = uuid.uuid4().hex[:8]
    async with gate_worker(client, task_queue, limit=2):
        h = await start_in_order(client, task_queue, key, 5)
        s = await gate_state(client, key)
        assert (s.limit, s.holders, s.waiting) == (2, [h[0].id, h[1].id], [x.id for x in h[2:]])
        first_gate_run = (await client.get_workflow_handle(f"import-gate-{key}").describe()).run_id
        assert [await stage(x) for x in h] == ["holding"] * 2 + ["waiting"] * 3
        await eventually(lambda: _status_is(h[2], "waiting"), "JobStatus shows the wait")

        await h[0].signal(GateHolder.done, "ok")
        assert await h[0].result() == "done"
        await eventually(lambda: _is(stage(h[2]), "holding"), "the third run gets the slot")
        assert await _status_is(h[2], "processing")
        assert [await stage(x) for x in h[3:]] == ["waiting", "waiting"]

        # A failed run releases its slot too.
        await h[1].signal(GateHolder.done, "fail")
        with pytest.raises(WorkflowFailureError):
            await h[1].result()
        await eventually(lambda: _is(stage(h[3]), "holding"), "the fourth run gets the slot")

        # A run cancelled while waiting leaves the queue.
        await h[4].cancel()
        with pytest.raises(WorkflowFailureError):
            await h[4].result()
        s = await gate_state(client, key)
        assert (s.holders, s.waiting) == ([h[2].id, h[3].id], [])

        for x in h[2:4]:
            await x.signal(GateHolder.done, "ok")
            await x.result()
        # Nobody holds or waits: the gate ends itself after its idle time, having
        # continued as new along the way (grants_per_run=2), queue intact.
        gate = client.get_workflow_handle(f"import-gate-{key}")
        assert (await gate.describe()).run_id != first_gate_run
        final = GateState.model_validate(await gate.result())
        assert (final.holders, final.waiting) == ([], [])


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


async def _status_is(h: WorkflowHandle[GateHolder, str], expected: str) -> bool:
    desc = await h.describe()
    return desc.typed_search_attributes.get(ui.JOB_STATUS) == expected


async def test_a_terminated_holder_does_not_keep_its_slot(client: Client, task_queue: str) -> None:
    key = uuid.uuid4().hex[:8]
    async with gate_worker(client, task_queue, limit=1):
        first, second = await start_in_order(client, task_queue, key, 2)
        assert await stage(second) == "waiting"
        await first.terminate("operator killed it")
        await eventually(lambda: _is(stage(second), "holding"), "the slot is taken back")
        await second.signal(GateHolder.done, "ok")
        assert await second.result() == "done"
        desc = await first.describe()
        assert desc.status == WorkflowExecutionStatus.TERMINATED


async def test_workspaces_do_not_share_slots(client: Client, task_queue: str) -> None:
    a, b = uuid.uuid4().hex[:8], uuid.uuid4().hex[:8]
    async with gate_worker(client, task_queue, limit=1):
        [ha] = await start_in_order(client, task_queue, a, 1)
        [hb] = await start_in_order(client, task_queue, b, 1)
        await eventually(lambda: _is(stage(ha), "holding"), "workspace a holds")
        await eventually(lambda: _is(stage(hb), "holding"), "workspace b holds")
        for h in (ha, hb):
            await h.signal(GateHolder.done, "ok")
            assert await h.result() == "done"


async def test_continue_as_new_keeps_the_slot(client: Client, task_queue: str) -> None:
    key = uuid.uuid4().hex[:8]
    async with gate_worker(client, task_queue, limit=1):
        first, second = await start_in_order(client, task_queue, key, 2)
        run_id = (await first.describe()).run_id
        await first.signal(GateHolder.done, "continue")

        async def new_run_holds() -> bool:
            latest = client.get_workflow_handle_for(GateHolder.run, first.id)
            desc = await latest.describe()
            return desc.run_id != run_id and await stage(latest) == "holding"

        await eventually(new_run_holds, "the continued run holds the slot again")
        s = await gate_state(client, key)
        assert (s.holders, s.waiting) == ([first.id], [second.id])
        assert await stage(second) == "waiting"
        latest = client.get_workflow_handle_for(GateHolder.run, first.id)
        await latest.signal(GateHolder.done, "ok")
        assert await latest.result() == "done"
        await eventually(lambda: _is(stage(second), "holding"), "then the next run holds")
        await second.signal(GateHolder.done, "ok")
        await second.result()


def test_the_limit_is_a_setting_of_at_least_one() -> None:
    assert Settings(_env_file=None).imports_per_workspace_limit == 5  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="imports_per_workspace_limit"):
        Settings(_env_file=None, imports_per_workspace_limit=0)  # type: ignore[call-arg]


async def test_imports_are_served_in_confirmation_order(
    client: Client, task_queue: str, tenant: Tenant, owner_pool: asyncpg.Pool, stack: Stack
) -> None:
    """Issue 19 item 8: 20 imports confirmed one after another, one slot per workspace:
    they queue, and run, in the order they were confirmed, whatever order their
    request-slot activities reach the gate in."""
    settings = make_settings(stack, temporal_task_queue=task_queue, imports_per_workspace_limit=1)
    ws = tenant.workspace_id
    # The slot is held by a run that never finishes on its own (no worker polls its task
    # queue) until the queue has formed: the order is then the gate's, not timing's.
    blocker = await client.start_workflow(
        "Blocker", id=f"blocker-{uuid.uuid4().hex[:8]}", task_queue=f"nobody-{task_queue}"
    )
    try:
        async with running_worker(client, settings, task_queue) as services:
            await client.start_workflow(
                WF_IMPORT_GATE,
                GateInput(gate=IMPORT_GATE, key=ws, limit=1),
                id=f"{IMPORT_GATE}-{ws}",
                task_queue=task_queue,
                start_signal="acquire",
                start_signal_args=[SlotRequest(gate=IMPORT_GATE, key=ws, holder_id=blocker.id)],
            )
            uploads = [await upload(services, settings, ws, tenant.user_id,
                                    csv_bytes([["email"], [f"n{n}@example.com"]]))
                       for n in range(20)]  # fmt: skip
            handles = [await confirm_import(client, services.pool, settings, ws, up.import_id)
                       for up in uploads]  # fmt: skip

            async def queued() -> bool:
                return len((await gate_state(client, ws)).waiting) == 20

            await eventually(queued, "all 20 imports wait for the slot")
            assert (await gate_state(client, ws)).waiting == [h.id for h in handles]
            await client.get_workflow_handle(f"{IMPORT_GATE}-{ws}").signal(
                "release", SlotRelease(holder_id=blocker.id)
            )
            for h in handles:
                assert (await h.result())["status"] == "completed"  # type: ignore[index]
    finally:
        await blocker.terminate("test over")
    rows = await owner_pool.fetch(
        "SELECT id FROM imports WHERE id = ANY($1::uuid[]) ORDER BY completed_at",
        [up.import_id for up in uploads],
    )
    assert [str(r["id"]) for r in rows] == [up.import_id for up in uploads]
