"""A workflow and activity that only log (for tests/test_ops.py's structured-log test)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from folksjobs.infra.logs import log_context
    from folksjobs.infra.ui import set_job_attributes


@activity.defn(name="log-probe")
async def log_probe(workspace_id: str) -> None:
    with log_context(workspace_id=workspace_id):
        activity.logger.info("probing for owner@example.com")


@workflow.defn(name="LogProbeTest")
class LogProbe:
    @workflow.run
    async def run(self, workspace_id: str) -> None:
        set_job_attributes(workspace_id=workspace_id, status="processing")
        workflow.logger.info("probe started")
        await workflow.execute_activity(
            log_probe, workspace_id, start_to_close_timeout=timedelta(seconds=30)
        )
