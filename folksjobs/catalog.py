"""The job catalog: what other services and operators rely on, one entry per spec job.

Each entry names the workflow type, its on/off flag, its trigger (event or schedule),
its input model, the workflow id rule, the spec's retry count and the search attributes
it sets. Queries, signals, updates and the result type are read from the workflow class
itself once its job is registered in `worker.JOBS` (see `folksjobs.devtools.contract`), so the
catalog never disagrees with the code that runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from folksjobs import models
from folksjobs.infra.search_attributes import EXPORT_ID, IMPORT_ID, JOB_STATUS, WORKSPACE_ID
from folksjobs.models import Model
from folksjobs.settings import Settings


@dataclass(frozen=True)
class JobSpec:
    job: str  # the spec's job name, also worker.Job.name
    workflow: str  # the stable workflow type name
    flag: str  # Settings field that registers the job (spec 004)
    trigger: str  # an event name of folksjobs.events, or "schedule <cron>"
    input: type[Model]
    result: type[Model] | None  # until the job's workflow is registered
    workflow_id: str  # the rule, as documentation for other services
    retries: int  # spec "retries: N": N retries after the first attempt
    search_attributes: tuple[str, ...]
    summary: str

    @property
    def setting_env(self) -> str:
        return self.flag.upper()

    @property
    def attempts(self) -> int:
        """Each activity's `RetryPolicy.maximum_attempts`: the first try and the retries."""
        return self.retries + 1


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        job="process-csv",
        workflow=models.WF_PROCESS_CSV,
        flag="job_import_enabled",
        trigger="import/csv.confirmed",
        input=models.ProcessCsvInput,
        result=models.ImportResult,
        workflow_id="import-<import_id>",
        retries=3,
        search_attributes=(WORKSPACE_ID.name, IMPORT_ID.name, JOB_STATUS.name),
        summary="Imports a confirmed CSV upload into the workspace's contacts. The result "
        "counts each row once: inserted, updated, unchanged, failed or a duplicate. Unchanged "
        "departs from the spec, which counts every row whose contact existed as updated: a "
        "row that would leave its contact as stored is not written and counted apart, so an "
        "import of a workspace's own export into it reads 0 inserted, 0 updated.",
    ),
    JobSpec(
        job="process-export",
        workflow=models.WF_PROCESS_EXPORT,
        flag="job_export_enabled",
        trigger="export/csv.confirmed",
        input=models.ProcessExportInput,
        result=models.ExportResult,
        workflow_id="export-<export_id>",
        retries=2,
        search_attributes=(WORKSPACE_ID.name, EXPORT_ID.name, JOB_STATUS.name),
        summary="Streams the workspace's contacts (optionally tag-filtered) to a CSV file.",
    ),
    JobSpec(
        job="send-welcome",
        workflow=models.WF_SEND_WELCOME,
        flag="job_welcome_enabled",
        trigger="user/signed.up",
        input=models.SendWelcomeInput,
        result=models.SendWelcomeResult,
        workflow_id="welcome-<user_id>",
        retries=2,
        search_attributes=(JOB_STATUS.name,),
        summary="Sends the welcome email to a new user.",
    ),
    JobSpec(
        job="weekly-digest",
        workflow=models.WF_WEEKLY_DIGEST,
        flag="job_digest_enabled",
        trigger="schedule 0 8 * * 1",
        input=models.WeeklyDigestInput,
        result=models.WeeklyDigestResult,
        # The Schedule's action id, to which Temporal appends the scheduled time; a run
        # started by `python -m starter digest` is digest-<week_start>.
        workflow_id=f"{models.DIGEST_SCHEDULE_WORKFLOW_ID}-<scheduled_time>",
        retries=1,
        search_attributes=(),
        summary="Emails each active workspace owner a summary of the past week.",
    ),
    JobSpec(
        job="discard-stale-uploads",
        workflow=models.WF_DISCARD_STALE_UPLOADS,
        flag="job_discard_uploads_enabled",
        trigger="schedule 15 * * * *",
        input=models.DiscardStaleUploadsInput,
        result=models.DiscardStaleUploadsResult,
        workflow_id=f"{models.DISCARD_UPLOADS_WORKFLOW_ID}-<scheduled_time>",
        retries=2,
        search_attributes=(),
        summary="Deletes uploads left pending longer than PENDING_UPLOAD_TTL_SECONDS, "
        "with their files.",
    ),
    JobSpec(
        job="expire-files",
        workflow=models.WF_EXPIRE_FILES,
        flag="job_expire_files_enabled",
        trigger="schedule 45 * * * *",
        input=models.ExpireFilesInput,
        result=models.ExpireFilesResult,
        workflow_id=f"{models.EXPIRE_FILES_WORKFLOW_ID}-<scheduled_time>",
        retries=2,
        search_attributes=(),
        summary="Deletes upload files UPLOAD_RETENTION_HOURS after their import ended and "
        "export files EXPORT_RETENTION_HOURS after they were written; the records stay.",
    ),
    JobSpec(
        job="delete-workspace",
        workflow=models.WF_DELETE_WORKSPACE,
        flag="job_deletion_enabled",
        trigger="workspace/deleted",
        input=models.DeleteWorkspaceInput,
        result=models.DeleteWorkspaceResult,
        workflow_id="delete-workspace-<workspace_id>",
        retries=9,
        search_attributes=(WORKSPACE_ID.name, JOB_STATUS.name),
        summary="Cancels a workspace's jobs and pending uploads, then deletes its contacts, "
        "tags, imports, exports, API keys and every file under it.",
    ),
    JobSpec(
        job="delete-user",
        workflow=models.WF_DELETE_USER,
        flag="job_deletion_enabled",
        trigger="user/deleted",
        input=models.DeleteUserInput,
        result=models.DeleteUserResult,
        workflow_id="delete-user-<user_id>",
        retries=9,
        search_attributes=(JOB_STATUS.name,),
        summary="Erases a user's address, cancels their jobs and pending uploads, removes "
        "their memberships and deletes the workspaces they owned alone.",
    ),
)


class JobDisabled(RuntimeError):
    """The job is switched off by its flag (spec 004): nothing was started or created."""


def require_enabled(settings: Settings, spec: JobSpec) -> None:
    if not getattr(settings, spec.flag):
        raise JobDisabled(f"job {spec.job} is disabled ({spec.setting_env}=false)")


def job_by_workflow(workflow: str) -> JobSpec:
    for spec in JOBS:
        if spec.workflow == workflow:
            return spec
    raise KeyError(workflow)


def job_by_name(job: str) -> JobSpec:
    for spec in JOBS:
        if spec.job == job:
            return spec
    raise KeyError(job)
