"""The workflows a versioned worker registers PINNED (folksjobs/infra/versioning.py).

A behavior may only be named by a worker that uses Worker Deployment versioning (the server
refuses it from any other), so the pinned form of a workflow is its subclass, registered
instead of it when WORKER_DEPLOYMENT_NAME is set; same type name, same code.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from folksjobs.models import WF_PROCESS_CSV, ImportResult, ProcessCsvInput
    from workflows.import_csv import ProcessCsv


# An import can outlive a release; each run stays on the version that started it, and its
# continue-as-new runs with it.
@workflow.defn(name=WF_PROCESS_CSV, versioning_behavior=VersioningBehavior.PINNED)
class PinnedProcessCsv(ProcessCsv):
    @workflow.run
    async def run(self, inp: ProcessCsvInput) -> ImportResult:
        return await super().run(inp)


PINNED: dict[type, type] = {ProcessCsv: PinnedProcessCsv}
