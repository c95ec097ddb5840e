"""A tiny workflow that holds a gate slot until told to finish (for tests/test_gate.py)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.gate import held_slot


@workflow.defn(name="GateHolderTest")
class GateHolder:
    def __init__(self) -> None:
        self.stage = "starting"
        self.finish: str | None = None

    @workflow.run
    async def run(self, key: str) -> str:
        self.stage = "waiting"
        async with held_slot(key):
            self.stage = "holding"
            await workflow.wait_condition(lambda: self.finish is not None)
            if self.finish == "continue":
                # Keeps the slot: the next run's held_slot is granted at once.
                workflow.continue_as_new(key)
            if self.finish == "fail":
                raise ApplicationError("asked to fail", non_retryable=True)
        self.stage = "done"
        return "done"

    @workflow.signal
    def done(self, how: str) -> None:
        self.finish = how

    @workflow.query
    def progress(self) -> str:
        return self.stage
