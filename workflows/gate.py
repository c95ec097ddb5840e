"""A concurrency gate: at most N runs per key at once, the rest wait in order of their
confirmation time (first come, first served).

Used for "at most N imports per workspace" (spec 003 `concurrency: { limit }`). One
long-lived gate workflow per key (`import-gate-<workspace_id>`) owns the queue:

| message              | from       | what it does                                       |
|----------------------|------------|----------------------------------------------------|
| request-slot-now     | holder     | local activity: update-with-start `acquire-now` on  |
| (local act.)         |            | the gate; returns True when the slot is free at once|
| acquire-now (update) | activity   | `acquire`, then the grant at once if the holder is  |
|                      |            | next and a slot is free (no signal then)            |
| request-slot (act.)  | holder     | runs started before REQUEST_SLOT_LOCAL: signal-with-|
|                      |            | start `acquire` on the gate                         |
| acquire (signal)     | activity   | queue the holder (by confirmation time); a known  |
|                      |            | holder is re-granted                               |
| <gate>.granted       | gate       | signal to the holder: its turn has come             |
| release-slot         | holder     | local activity: the client sends `release` (runs   |
| (local act.)         |            | before RELEASE_SLOT_LOCAL signal from the workflow) |
| release (signal)     | holder     | frees the slot, or leaves the queue                 |
| state (query)        | anyone     | limit, holders, waiting                             |

A holder that dies without releasing (terminated, timed out) is noticed by the gate's
periodic `find-closed-holders` check while others wait. The gate ends itself after
`idle_seconds` with nobody holding or waiting; the next request starts a new run.
A holder keeps its slot across continue-as-new (the holder is its workflow id), and
calling `acquire_slot` again in the new run is granted at once.

In a workflow:

    async with held_slot(inp.workspace_id):
        ...  # at most N of these run per workspace

`held_slot` releases on return, failure and cancellation, but not on continue-as-new
(the next run keeps the slot by calling `held_slot` again) nor when the worker evicts
the run from its cache (a plain `finally` would try to signal from a dead event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.gate import (
        ACQUIRE_SIGNAL,
        ACQUIRE_UPDATE,
        RELEASE_SIGNAL,
        GateActivities,
        gate_workflow_id,
    )
    from folksjobs.infra.ui import set_job_attributes
    from folksjobs.models import (
        WF_IMPORT_GATE,
        GateInput,
        GateState,
        ReleaseSlot,
        SlotRelease,
        SlotRequest,
    )

IMPORT_GATE = "import-gate"
# At most EXPORTS_PER_WORKSPACE_LIMIT exports per workspace (ProcessExport).
EXPORT_GATE = "export-gate"
# Holders started after this change ask with request-slot-now, a local activity whose
# update-with-start on the gate returns the grant when a slot is free; runs started before
# it keep the request-slot activity and wait for the grant signal.
REQUEST_SLOT_LOCAL = "request-slot-now"
# Holders started after this change release with a local activity (the client's signal):
# the run then ends in the same workflow task, where an external signal needs one more
# (its delivery event) before the run can complete.
RELEASE_SLOT_LOCAL = "release-slot-local"
GATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


def granted_signal(gate: str) -> str:
    return f"{gate}.granted"


@workflow.defn(name=WF_IMPORT_GATE)
class SlotGate:
    @workflow.init
    def __init__(self, inp: GateInput) -> None:
        self.inp = inp
        self.limit = inp.limit
        self.holders: list[str] = list(inp.holders)
        self.waiting: list[str] = list(inp.waiting)
        self.since: dict[str, datetime] = dict(inp.since)
        self.regrant: list[str] = []
        self.grants = 0

    @workflow.signal(name=ACQUIRE_SIGNAL)
    def acquire(self, req: SlotRequest) -> None:
        if req.limit:
            # The latest setting wins, for the next grants.
            self.limit = req.limit
        if req.holder_id in self.holders:
            self.regrant.append(req.holder_id)
        elif req.holder_id not in self.waiting:
            self._enqueue(req)

    @workflow.update(name=ACQUIRE_UPDATE)
    def acquire_now(self, req: SlotRequest) -> bool:
        """`acquire`, answered: True when the slot is the holder's at once (it then gets
        no grant signal), False when it queues (the grant signal comes on its turn)."""
        self.acquire(req)
        holder = req.holder_id
        if holder in self.regrant:
            self.regrant.remove(holder)
            return True
        if self.waiting[:1] == [holder] and len(self.holders) < self.limit:
            # What _grant_all would do next for the head of the queue, minus the signal.
            self.waiting.pop(0)
            self.since.pop(holder, None)
            self.holders.append(holder)
            self.grants += 1
            return True
        return False

    def _enqueue(self, req: SlotRequest) -> None:
        """First come, first served by confirmation time, not by arrival: the request-slot
        activities of runs started one after another can reach the gate in any order."""
        if req.since is not None:
            self.since[req.holder_id] = req.since
            for i, waiter in enumerate(self.waiting):
                if (t := self.since.get(waiter)) is not None and t > req.since:
                    self.waiting.insert(i, req.holder_id)
                    return
        self.waiting.append(req.holder_id)

    @workflow.signal(name=RELEASE_SIGNAL)
    def release(self, rel: SlotRelease) -> None:
        for queue in (self.holders, self.waiting):
            if rel.holder_id in queue:
                queue.remove(rel.holder_id)
        self.since.pop(rel.holder_id, None)

    @workflow.query(name="state")
    def state(self) -> GateState:
        return GateState(gate=self.inp.gate, key=self.inp.key, limit=self.limit,
                         holders=list(self.holders), waiting=list(self.waiting))  # fmt: skip

    def _grantable(self) -> bool:
        return bool(self.regrant) or (bool(self.waiting) and len(self.holders) < self.limit)

    def _show(self) -> None:
        """The UI's "current details": a gate is waiting by design, not a stuck job."""
        workflow.set_current_details(
            f"concurrency gate, not a job: {len(self.holders)}/{self.limit} slots held, "
            f"{len(self.waiting)} waiting; ends after {self.inp.idle_seconds:.0f} s idle"
        )

    @workflow.run
    async def run(self, inp: GateInput) -> GateState:
        while True:
            await self._grant_all()
            self._show()
            if not self.holders and not self.waiting:
                try:
                    await workflow.wait_condition(
                        lambda: bool(self.waiting or self.holders or self.regrant),
                        timeout=timedelta(seconds=inp.idle_seconds),
                    )
                except TimeoutError:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    # A request that came in meanwhile must not end with this run.
                    if not (self.waiting or self.holders or self.regrant):
                        return self.state()
                continue
            self._show()
            if self.grants >= inp.grants_per_run or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                # Pending grants are not carried over: hand them out first.
                if not self._grantable():
                    workflow.continue_as_new(inp.model_copy(update={
                        "limit": self.limit, "holders": self.holders, "waiting": self.waiting,
                        "since": self.since,
                    }))  # fmt: skip
                continue
            try:
                await workflow.wait_condition(
                    self._grantable, timeout=timedelta(seconds=inp.check_seconds)
                )
            except TimeoutError:
                if self.waiting:
                    await self._drop_closed_holders()

    async def _grant_all(self) -> None:
        while self.regrant:
            await self._grant(self.regrant.pop(0))
        while self.waiting and len(self.holders) < self.limit:
            holder = self.waiting.pop(0)
            self.since.pop(holder, None)
            self.holders.append(holder)
            await self._grant(holder)

    async def _grant(self, holder: str) -> None:
        self.grants += 1
        try:
            await workflow.get_external_workflow_handle(holder).signal(
                granted_signal(self.inp.gate), self.inp.key
            )
        except FailureError:
            # The holder is gone (not found / closed): its slot goes to the next in line.
            workflow.logger.warning("holder %s is gone; slot freed", holder)
            if holder in self.holders:
                self.holders.remove(holder)

    async def _drop_closed_holders(self) -> None:
        closed = await workflow.execute_activity_method(
            GateActivities.find_closed_holders,
            list(self.holders),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
        for holder in closed:
            workflow.logger.warning("holder %s closed without releasing; slot freed", holder)
            self.release(SlotRelease(holder_id=holder))


# --- the holder's side: called from inside the limited workflow ---------------------


@dataclass(frozen=True)
class Slot:
    gate: str
    key: str
    holder_id: str

    @property
    def gate_workflow_id(self) -> str:
        return gate_workflow_id(self.gate, self.key)


async def acquire_slot(key: str, *, gate: str = IMPORT_GATE) -> Slot:
    """Wait, in arrival order, until the gate for `key` grants this run a slot."""
    holder = workflow.info().workflow_id
    granted = False

    def on_grant(granted_key: str) -> None:
        nonlocal granted
        if granted_key == key:
            granted = True

    workflow.set_signal_handler(granted_signal(gate), on_grant)
    slot = Slot(gate, key, holder)
    req = SlotRequest(
        gate=gate, key=key, holder_id=holder, since=workflow.info().workflow_start_time
    )
    try:
        if workflow.patched(REQUEST_SLOT_LOCAL):
            # request-slot answers whether the slot is this run's already (the gate's
            # update): a free slot costs no signal round trip and no task-queue hop.
            granted = (
                await workflow.execute_local_activity_method(
                    GateActivities.request_slot_now,
                    req,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=GATE_RETRY,
                )
                or granted
            )
        else:
            await workflow.execute_activity_method(
                GateActivities.request_slot,
                req,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=GATE_RETRY,
            )
        waited = not granted
        if waited:
            # Findable in the UI as `JobStatus = "waiting"` while it queues.
            set_job_attributes(status="waiting")
            workflow.set_current_details(f"waiting for a slot of {slot.gate_workflow_id}")
        await workflow.wait_condition(lambda: granted)
    except asyncio.CancelledError:
        # Leave the queue, so the place is not granted to a run that is gone.
        await release_slot(slot)
        raise
    if waited:
        set_job_attributes(status="processing")
        workflow.set_current_details("")
    return slot


async def release_slot(slot: Slot) -> None:
    """Free the slot (or the place in the queue). Safe to call twice."""
    if workflow.patched(RELEASE_SLOT_LOCAL):
        await workflow.execute_local_activity_method(
            GateActivities.release_slot,
            ReleaseSlot(
                gate_workflow_id=slot.gate_workflow_id,
                release=SlotRelease(holder_id=slot.holder_id),
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=GATE_RETRY,
        )
        return
    try:
        await workflow.get_external_workflow_handle(slot.gate_workflow_id).signal(
            RELEASE_SIGNAL, SlotRelease(holder_id=slot.holder_id)
        )
    except FailureError:
        # The gate only ends when nobody holds a slot, so there is nothing to free.
        workflow.logger.info("gate %s not running; nothing to release", slot.gate_workflow_id)


@asynccontextmanager
async def held_slot(key: str, *, gate: str = IMPORT_GATE) -> AsyncIterator[Slot]:
    slot = await acquire_slot(key, gate=gate)
    try:
        yield slot
    except (Exception, asyncio.CancelledError):
        await release_slot(slot)
        raise
    await release_slot(slot)
