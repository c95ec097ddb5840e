"""The concurrency gate's side effects: signal-with-start of the gate, holder liveness.

A workflow cannot signal-with-start another workflow itself, so asking for a slot is a
(tiny, idempotent) activity; releasing is a plain external signal from the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from activities.base import ActivityClass
from folksjobs.models import WF_IMPORT_GATE, GateInput, SlotRequest

ACQUIRE_SIGNAL = "acquire"
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
            GateInput(gate=req.gate, key=req.key, limit=limit, idle_seconds=self.idle_seconds,
                      check_seconds=self.check_seconds, grants_per_run=self.grants_per_run),
            id=gate_workflow_id(req.gate, req.key),
            task_queue=activity.info().task_queue,
            start_signal=ACQUIRE_SIGNAL,
            start_signal_args=[req.model_copy(update={"limit": limit})],
            static_summary=f"{req.gate} for {req.key}: at most {limit} at once (a gate, not a "
            "job: it waits for requests and ends when idle)",
        )  # fmt: skip

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
        find_closed_holders,
    )
