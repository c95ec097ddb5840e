"""The concurrency gate's side effects: update-with-start (or, for runs started before it,
signal-with-start) of the gate, the release signal, holder liveness.

A workflow cannot update-with-start another workflow itself, so asking for a slot is a
(tiny, idempotent) local activity; so is releasing, which lets the holder end in the same
workflow task (an external signal from the workflow needs one more).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from temporalio import activity
from temporalio.client import (
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.base import ActivityClass
from folksjobs.models import WF_IMPORT_GATE, GateInput, ReleaseSlot, SlotRequest

log = logging.getLogger(__name__)
ACQUIRE_SIGNAL = "acquire"
ACQUIRE_UPDATE = "acquire-now"
RELEASE_SIGNAL = "release"


def gate_workflow_id(gate: str, key: str) -> str:
    return f"{gate}-{key}"


class GateActivities(ActivityClass):
    def __init__(
        self,
        limits: Mapping[str, int],
        *,
        idle_seconds: float = 300.0,
        check_seconds: float = 30.0,
        grants_per_run: int = 1000,
    ) -> None:
        self.limits = dict(limits)
        self.idle_seconds = idle_seconds
        self.check_seconds = check_seconds
        self.grants_per_run = grants_per_run

    @activity.defn(name="request-slot")
    async def request_slot(self, req: SlotRequest) -> None:
        limit = self.limits[req.gate]
        # Started on the caller's task queue: the gate lives with the jobs it limits.
        await activity.client().start_workflow(
            WF_IMPORT_GATE,
            self._gate_input(req, limit),
            id=gate_workflow_id(req.gate, req.key),
            task_queue=activity.info().task_queue,
            start_signal=ACQUIRE_SIGNAL,
            start_signal_args=[req.model_copy(update={"limit": limit})],
            static_summary=self._summary(req, limit),
            # The import's own Priority (its workspace's fairness key, a person waiting).
            priority=activity.info().priority,
        )

    @activity.defn(name="request-slot-now")
    async def request_slot_now(self, req: SlotRequest) -> bool:
        """request-slot as an update-with-start: True when the gate granted the slot at
        once (no grant signal follows), False when the holder queues for the signal."""
        limit = self.limits[req.gate]
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            WF_IMPORT_GATE,
            self._gate_input(req, limit),
            id=gate_workflow_id(req.gate, req.key),
            # Started on the caller's task queue: the gate lives with the jobs it limits.
            task_queue=activity.info().task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=self._summary(req, limit),
            # The import's own Priority (its workspace's fairness key, a person waiting).
            priority=activity.info().priority,
        )
        try:
            return bool(
                await activity.client().execute_update_with_start_workflow(
                    ACQUIRE_UPDATE,
                    req.model_copy(update={"limit": limit}),
                    start_workflow_operation=start,
                    result_type=bool,
                )
            )
        except WorkflowUpdateFailedError:
            # A gate still run by a worker of the release before this one has no such
            # update and rejects it, changing nothing: ask as that release did.
            await self.request_slot(req)
            return False

    def _gate_input(self, req: SlotRequest, limit: int) -> GateInput:
        return GateInput(
            gate=req.gate,
            key=req.key,
            limit=limit,
            idle_seconds=self.idle_seconds,
            check_seconds=self.check_seconds,
            grants_per_run=self.grants_per_run,
        )

    @staticmethod
    def _summary(req: SlotRequest, limit: int) -> str:
        return (f"{req.gate} for {req.key}: at most {limit} at once (a gate, not a job: it "
                "waits for requests and ends when idle)")  # fmt: skip

    @activity.defn(name="release-slot")
    async def release_slot(self, job: ReleaseSlot) -> None:
        """The holder's release signal, sent by the client (gate.RELEASE_SLOT_LOCAL)."""
        gate = activity.client().get_workflow_handle(job.gate_workflow_id)
        try:
            await gate.signal(RELEASE_SIGNAL, job.release)
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            # The gate only ends when nobody holds a slot, so there is nothing to free.
            log.info("gate %s not running; nothing to release", job.gate_workflow_id)

    @activity.defn(name="find-closed-holders")
    async def find_closed_holders(self, holders: list[str]) -> list[str]:
        """Holders whose run closed without releasing (terminated, timed out)."""
        client = activity.client()
        closed = []
        for wid in holders:
            try:
                desc = await client.get_workflow_handle(wid).describe()
            except RPCError as e:
                if e.status != RPCStatusCode.NOT_FOUND:
                    raise
                closed.append(wid)
                continue
            if desc.status != WorkflowExecutionStatus.RUNNING:
                closed.append(wid)
        return closed

    ACTIVITIES = (
        request_slot,
        request_slot_now,
        release_slot,
        find_closed_holders,
    )
