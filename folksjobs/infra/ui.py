"""What makes a run findable and readable in the Temporal UI.

Search attributes (registered by `devstack.TemporalDevServer`, and on a real cluster by
`temporal operator search-attribute create`, see deploy/README.md) let an operator filter
runs: `WorkspaceId = "..." AND JobStatus = "failed"`. Values are ids and states only,
never an email address. Workflows call `set_job_attributes` as they move between states;
`dispatch` sets the same keys at start, so a run is findable before its first task.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import quote

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from folksjobs.infra.search_attributes import EXPORT_ID, IMPORT_ID, JOB_STATUS, WORKSPACE_ID
from folksjobs.settings import Settings

# The records' status words (imports/exports.status), plus queued (dispatched, no task
# yet) and waiting (queued behind the per-workspace import limit).
JobStatus = Literal["queued", "waiting", "processing", "completed", "failed", "cancelled"]


def job_attributes(
    *,
    workspace_id: str | None = None,
    import_id: str | None = None,
    export_id: str | None = None,
    status: JobStatus | None = None,
) -> TypedSearchAttributes:
    values = [
        (WORKSPACE_ID, workspace_id),
        (IMPORT_ID, import_id),
        (EXPORT_ID, export_id),
        (JOB_STATUS, status),
    ]
    return TypedSearchAttributes([SearchAttributePair(k, v) for k, v in values if v is not None])


def set_job_attributes(
    *,
    workspace_id: str | None = None,
    import_id: str | None = None,
    export_id: str | None = None,
    status: JobStatus | None = None,
) -> None:
    """From inside a workflow: upsert the given keys (others are left as they are)."""
    attrs = job_attributes(
        workspace_id=workspace_id, import_id=import_id, export_id=export_id, status=status
    )
    workflow.upsert_search_attributes([p.key.value_set(p.value) for p in attrs])
    if status is not None:
        # The "current details" line of the UI's workflow page.
        workflow.set_current_details(f"status: {status}")


def run_link(settings: Settings, workflow_id: str) -> str:
    """The run's page in the Temporal UI."""
    return (
        f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{quote(workflow_id, safe='')}"
    )
