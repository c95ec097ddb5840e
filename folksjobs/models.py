"""Every workflow and activity input/output, and the names other services rely on.

Payloads carry ids, blob keys, indexes and counts: never rows or email addresses
(they live in Temporal's history, shown in the UI, with a 2 MB payload limit).
Field names are snake_case JSON: `temporal workflow start --input '{"user_id": ...}'`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import SkipJsonSchema

# Stable names: other services start these over gRPC. Changing one is a breaking change.
TASK_QUEUE = "folksjobs"
WF_PROCESS_CSV = "ProcessCsv"
WF_PROCESS_EXPORT = "ProcessExport"
WF_SEND_WELCOME = "SendWelcome"
WF_WEEKLY_DIGEST = "WeeklyDigest"
WF_WORKSPACE_DIGEST = "WorkspaceDigest"
WF_IMPORT_GATE = "WorkspaceImportGate"
WF_DISCARD_STALE_UPLOADS = "DiscardStaleUploads"
WF_EXPIRE_FILES = "ExpireFiles"
WF_DELETE_WORKSPACE = "DeleteWorkspace"
WF_DELETE_USER = "DeleteUser"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


# Every id a caller passes (users, workspaces, imports, exports) is a UUID in text form;
# the pattern bounds its length too, so no id can be a 2 MB string in a log or an email.
Id = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
        max_length=36,
    ),
]
# A short machine name or key (gate names, gate keys, holder workflow ids).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def chunking_task_queue(task_queue: str, small: bool = False) -> str:
    """download-and-chunk's own queue beside `task_queue`, served by its own slots in the
    same worker process: process-batch waits for the chunks it writes, so the two must
    never compete for one pool of slots (worker.py). `small`: a file of a few chunks (all
    within the Redis bound, so its chunker never waits) has a queue and slots of its own,
    and never queues behind the parsers of large files, which hold theirs for as long as
    their imports run."""
    return f"{task_queue}-chunking" + ("-small" if small else "")


def import_workflow_id(import_id: str) -> str:
    return f"import-{import_id}"


def export_workflow_id(export_id: str) -> str:
    return f"export-{export_id}"


def welcome_workflow_id(user_id: str) -> str:
    return f"welcome-{user_id}"


def delete_workspace_workflow_id(workspace_id: str) -> str:
    return f"delete-workspace-{workspace_id}"


def delete_user_workflow_id(user_id: str) -> str:
    return f"delete-user-{user_id}"


# --- send-welcome (event user/signed.up) ---------------------------------------------


class SendWelcomeInput(Model):
    user_id: Id = Field(description="The new user's id in the user directory")


class SendWelcomeResult(Model):
    message_id: str
    backend: str


class WelcomeEmailJob(Model):
    user_id: str
    idempotency_key: str


# --- process-csv (event import/csv.confirmed) ----------------------------------------


class ProcessCsvInput(Model):
    import_id: Id
    workspace_id: Id
    user_id: Id = Field(description="A member of the workspace: the one who gets the emails")
    # Carried across continue-as-new only: not in the contract, and a run that was not
    # continued from another one refuses it (ProcessCsv), so no caller can skip the
    # record's state check with a cursor of its own.
    resume: SkipJsonSchema[ImportCursor | None] = None


class ImportOptions(Model):
    """The worker's import settings, recorded in history so replays see the same values."""

    chunk_rows: int
    sub_batch_rows: int
    parallel_chunks: int
    chunks_per_run: int
    # Settings.import_inline_max_rows; 0 in runs recorded before it (never inline).
    inline_max_rows: int = 0
    # Settings.import_chunk_lead; 0 in runs recorded before it (the chunker unbounded).
    chunk_lead: int = 0
    # Settings.gravatar_enabled: the run starts the avatars job (EnrichAvatars). False in
    # runs recorded before it, which looked avatars up inside process-batch.
    avatars: bool = False


class ImportCursor(Model):
    chunk_count: int
    total_rows: int
    next_chunk: int
    chunks_done: int = 0
    rechunks: int = 0
    started_at: datetime
    options: ImportOptions
    counts: ImportCounts
    # claim-import's record, for every step of every run of the import (CLAIM_IMPORT).
    file: ImportFile | None = None
    # The run started the avatars job: its chunks mark contacts as owed a lookup instead
    # of looking them up (ProcessCsv's AVATARS_AFTER_COMMIT).
    avatars: bool = False


class ImportFile(Model):
    """What the steps after claim-import need of the record to read and map the file,
    passed on instead of read again at every step. Column names and field names only:
    no row of the file."""

    blob_key: str
    encoding: str
    delimiter: str
    sep_line: bool
    headers: list[str]
    column_mapping: list[str]
    total_rows: int


class ImportRecord(Model):
    import_id: str
    workspace_id: str
    user_id: str
    status: str
    blob_key: str
    total_rows: int
    options: ImportOptions
    # claim-import's (CLAIM_IMPORT); None in the results recorded before it.
    file: ImportFile | None = None


class ChunkPlan(Model):
    import_id: str
    workspace_id: str
    chunk_rows: int
    # Bumped each time lost chunks are rebuilt; process-batch waits for its generation.
    generation: int = 0
    # One run's range of a file continued as new (folksjobs/imports/backlog.py): chunks
    # before first_chunk are committed, the chunker stops at stop_chunk (None: the end).
    first_chunk: int = 0
    stop_chunk: int | None = None
    # At most this many chunks of the import held in Redis at once (0: no bound).
    max_held: int = 0
    # claim-import's record (CLAIM_IMPORT); None: the step reads it (runs from before).
    file: ImportFile | None = None


class ChunkPlanResult(Model):
    chunk_count: int
    total_rows: int


class ChunkJob(Model):
    import_id: str
    workspace_id: str
    chunk_index: int
    sub_batch_rows: int
    generation: int = 0
    # The workflow saw this generation's chunking finish: a missing chunk is lost, at once.
    chunking_done: bool = False
    # claim-import's record (CLAIM_IMPORT); None: the step reads it (runs from before).
    file: ImportFile | None = None
    # True: the rows' contacts are marked as owed a lookup by this import, for the avatars
    # job; False (runs started before it): Gravatar is asked here, before the upsert.
    avatars: bool = False


class ChunkResult(Model):
    chunk_index: int
    rows: int
    inserted: int
    updated: int
    failed: int
    duplicates: int
    # Rows whose contact was stored as they would leave it (not written); 0 in results
    # recorded before it was counted apart, when `updated` held them.
    unchanged: int = 0


class ImportCounts(Model):
    total_rows: int = 0
    processed_rows: int = 0
    inserted: int = 0
    updated: int = 0
    failed: int = 0
    duplicates: int = 0
    unchanged: int = 0

    def add(self, r: ChunkResult) -> None:
        # Only ever fed each chunk's ledger result once (see ProcessCsv), never a retry.
        self.processed_rows += r.rows
        self.inserted += r.inserted
        self.updated += r.updated
        self.unchanged += r.unchanged
        self.failed += r.failed
        self.duplicates += r.duplicates


class MissingChunks(Model):
    import_id: str
    workspace_id: str
    chunk_count: int


class FinalizeImport(Model):
    import_id: str
    workspace_id: str
    user_id: str
    workflow_id: str
    started_at: datetime
    # The run started the avatars job: the result counts the avatars done and pending.
    avatars: bool = False
    # finalize sends the completion emails itself: runs started before the patch
    # import-emails-apart; after it, send-import-emails does, waiting for the provider.
    emails: bool = True


class ImportFailure(Model):
    import_id: str
    workspace_id: str
    user_id: str
    workflow_id: str
    error: str
    cancelled: bool = False


class ErrorSample(Model):
    row: int
    reason: str


class ImportResult(Model):
    import_id: str
    status: Literal["completed", "failed", "cancelled"]
    total_rows: int = Field(
        description="inserted + updated + unchanged + failed + duplicates: each row once"
    )
    inserted: int = Field(description="rows that made a new contact")
    updated: int = Field(description="rows that changed their contact (a value, a tag)")
    failed: int
    duplicates: int
    error_samples: list[ErrorSample] = []
    unchanged: int = Field(
        default=0,
        description="rows whose contact was already stored as the row would leave it: not "
        "written (the spec counts them as updated); 0 in results from before it was counted",
    )
    ai_summary: str | None = None
    duration_ms: int = 0
    # When the import completed: its avatars looked up and still owed (they keep arriving
    # after it, from the avatars job `avatars-<import_id>`). None: Gravatar off.
    avatars: AvatarCounts | None = None


class AvatarCounts(Model):
    """An import's avatars: `done` (its contacts no longer owed a lookup: looked up, from
    the cache or Gravatar, or taken over by a later import) and `pending` (still owed)."""

    done: int = 0
    pending: int = 0


class ImportProgress(Model):
    import_id: str
    stage: str
    chunks_total: int
    chunks_done: int
    counts: ImportCounts
    # None: Gravatar off. While the import runs its avatars are all pending (the job
    # starts once the rows are committed); the result has them as of its completion.
    avatars: AvatarCounts | None = None


# --- process-export (event export/csv.confirmed) -------------------------------------


class ProcessExportInput(Model):
    export_id: Id
    workspace_id: Id
    user_id: Id = Field(description="A member of the workspace: the one who gets the link")
    # How long stream-export may go silent before Temporal declares its worker dead and
    # retries it elsewhere; callers leave the default (tests shorten it).
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    # export/csv.confirmed's tagIds (spec 001): the filter by the workspace's tag ids, for
    # an export record that names no tags (or the same ones). None: the record's names.
    tag_ids: list[Id] | None = Field(default=None, max_length=1000)


class ExportJob(Model):
    export_id: str
    workspace_id: str
    # Checked against the workspace before the export is claimed (None: runs scheduled
    # before the check existed).
    user_id: str | None = None
    tag_ids: list[str] | None = None


class TagFilter(Model):
    # None: no tags named, every contact of the workspace. A list: contacts carrying ANY
    # of these tags (possibly none, when no named tag exists in the workspace).
    tag_ids: list[str] | None
    any_match: bool


class MetadataJob(Model):
    workspace_id: str
    tag_ids: list[str] | None


class ExportMetadata(Model):
    custom_keys: list[str]
    total_rows: int


class StreamExportJob(Model):
    export_id: str
    workspace_id: str
    tag_ids: list[str] | None
    custom_keys: list[str]
    total_rows: int


class ExportRows(Model):
    """stream-export -> its workflow (signal): rows written so far by one attempt."""

    attempt: int
    rows: int


class ExportFile(Model):
    blob_key: str
    row_count: int
    file_bytes: int
    # A local path or an s3:// URI: never a presigned URL (history is readable in the UI).
    uri: str


class ExportNotification(Model):
    export_id: str
    workspace_id: str
    user_id: str
    idempotency_key: str


class NotificationResult(Model):
    sent: bool
    message_id: str | None = None


class ExportFailure(Model):
    export_id: str
    workspace_id: str
    error: str
    cancelled: bool = False


class ExportProgress(Model):
    export_id: str
    stage: str
    rows_written: int
    total_rows: int | None


class ExportResult(Model):
    export_id: str
    status: Literal["completed", "failed"]
    row_count: int
    blob_key: str
    location: str


# --- weekly-digest (Schedule 0 8 * * 1) ----------------------------------------------


# The Schedule's start-workflow action id; Temporal appends the scheduled time
# (`digest-weekly-2026-11-23T08:00:00Z`), so a scheduled time is started at most once.
DIGEST_SCHEDULE_WORKFLOW_ID = "digest-weekly"


def digest_workflow_id(week_start: date) -> str:
    """A manual run (`python -m starter digest`): one per reporting week."""
    return f"digest-{week_start.isoformat()}"


def digest_send_key(workspace_id: str, week_start: date) -> str:
    """The idempotency key of one workspace's digest for one week, on every attempt."""
    return f"digest-{workspace_id}-{week_start.isoformat()}"


class WeeklyDigestInput(Model):
    # The time the run reports up to (normally a Monday 08:00 UTC). Empty => the
    # Schedule's scheduled time (search attribute TemporalScheduledStartTime), or for a
    # manual start without it, the workflow's start time.
    scheduled_for: datetime | None = None
    # Carried across continue-as-new only (not in the contract).
    resume: SkipJsonSchema[DigestCursor | None] = None


DigestOutcome = Literal[
    "sent", "skipped_disabled", "skipped_no_activity", "failed", "already_sent", "given_up"
]


class DigestSummary(Model):
    sent: int = 0
    skipped_disabled: int = 0
    skipped_no_activity: int = 0
    failed: int = 0
    already_sent: int = 0
    # Still refused by the provider when the digest's delivery window closed.
    given_up: int = 0

    def count(self, outcome: DigestOutcome) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)


# Failed workspace ids kept in the result for the operator; the count is always exact.
DIGEST_FAILED_IDS_KEPT = 100


class DigestCursor(Model):
    after_workspace_id: str
    runs: int
    totals: DigestSummary
    failed_workspace_ids: list[str] = []
    given_up_workspace_ids: list[str] = []


class DigestWeek(Model):
    """The reporting window [window_start, window_end) and the week it is sent for."""

    week_start: date = Field(description="Monday (UTC) of the week the window starts in")
    window_start: datetime
    window_end: datetime


class DigestPageRequest(Model):
    after_workspace_id: str | None = None


class DigestPage(Model):
    workspace_ids: list[str]
    # The last id of a full page; None once the last page has been read.
    next_after: str | None
    concurrency: int
    # Digests a request through the provider's batch endpoint (EMAIL_BATCH_SIZE); absent
    # from pages recorded before it, which sent one by one.
    batch_size: int = 1


class WorkspaceDigestJob(Model):
    workspace_id: str
    week: DigestWeek
    idempotency_key: str


class WorkspaceDigestResult(Model):
    workspace_id: str
    outcome: DigestOutcome
    new_contacts: int = 0


# Sent by a digest activity to its run when a provider first makes its email wait.
DIGEST_WAITING_SIGNAL = "digest-waiting"


class DigestWaiting(Model):
    workspace_ids: list[str]


class DigestBatchJob(Model):
    """Up to EMAIL_BATCH_SIZE workspaces whose digests go out in one batch request."""

    workspace_ids: list[str]
    week: DigestWeek


class DigestBatchResult(Model):
    results: list[WorkspaceDigestResult]


class WeeklyDigestResult(Model):
    week: DigestWeek
    summary: DigestSummary
    runs: int = Field(description="workflow runs in the continue-as-new chain")
    failed_workspace_ids: list[str] = []
    waiting: int = Field(
        default=0,
        description="digests a provider is making wait (the progress query; 0 once done)",
    )
    given_up_workspace_ids: list[str] = Field(
        default=[],
        description="workspaces whose digest the provider still refused when the delivery"
        " window closed (first 100; summary.given_up is the exact count)",
    )


# --- concurrency gate (at most N imports per workspace, spec 003) ---------------------


class SlotRequest(Model):
    gate: Name = Field(description="Which gate: e.g. 'import-gate'")
    key: Name = Field(description="What the limit is per: e.g. the workspace id")
    holder_id: Name = Field(description="Workflow id of the run asking for a slot")
    limit: int = Field(
        default=0, ge=0, le=1000, description="Filled in from settings by request-slot"
    )
    since: datetime | None = Field(
        default=None, description="When the holder's job was confirmed: the queue's order"
    )


class SlotRelease(Model):
    holder_id: Name


class ReleaseSlot(Model):
    """The release-slot activity's input: the gate to signal and the signal's payload."""

    gate_workflow_id: str
    release: SlotRelease


class GateInput(Model):
    gate: Name
    key: Name
    limit: int = Field(ge=1, le=1000)
    idle_seconds: float = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)
    check_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    # Continue-as-new after this many grants (or when Temporal suggests it): bounded history.
    grants_per_run: int = Field(default=1000, ge=1, le=100_000)
    # Carried across continue-as-new.
    holders: list[Name] = Field(default=[], max_length=10_000)
    waiting: list[Name] = Field(default=[], max_length=10_000)
    since: dict[Name, datetime] = Field(default={}, max_length=10_000)


class GateState(Model):
    gate: str
    key: str
    limit: int
    holders: list[str]
    waiting: list[str]


# --- discard-stale-uploads (Schedule, hourly) ------------------------------------------

# The Schedule's action id; Temporal appends the scheduled time.
DISCARD_UPLOADS_WORKFLOW_ID = "discard-stale-uploads"


class DiscardStaleUploadsInput(Model):
    # None: the worker's PENDING_UPLOAD_TTL_SECONDS.
    older_than_seconds: float | None = None


class DiscardStaleUploadsResult(Model):
    workspaces: int
    discarded: int


# --- expire-files (Schedule, hourly) ---------------------------------------------------

# The Schedule's action id; Temporal appends the scheduled time.
EXPIRE_FILES_WORKFLOW_ID = "expire-files"


class ExpireFilesInput(Model):
    # None: the worker's UPLOAD_RETENTION_HOURS / EXPORT_RETENTION_HOURS. An export file
    # is kept at least S3_PRESIGN_SECONDS whatever is asked: its link must not outlive it.
    upload_retention_seconds: float | None = Field(default=None, ge=0)
    export_retention_seconds: float | None = Field(default=None, ge=0)


class ExpireFilesResult(Model):
    workspaces: int
    upload_files_deleted: int
    export_files_deleted: int


# --- delete-workspace (event workspace/deleted) ------------------------------------------


class DeleteWorkspaceInput(Model):
    workspace_id: Id
    user_id: Id = Field(description="The workspace's owner: who asked for the deletion")
    # How long a step that deletes in batches may go silent before Temporal declares its
    # worker dead and retries it elsewhere; callers leave the default (tests shorten it).
    heartbeat_timeout_seconds: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)


class WorkspaceDeletion(Model):
    """begin-workspace-deletion's answer: what there was to delete when it began (the
    result's counts: a retry after a killed worker finds fewer rows, never other ones)."""

    found: bool
    contacts: int = 0
    imports: int = 0
    exports: int = 0


class JobsCancelled(Model):
    workflow_ids: list[str]
    pending_uploads_discarded: int


class Removed(Model):
    count: int


class DeleteWorkspaceResult(Model):
    workspace_id: str
    status: Literal["deleted", "not_found"]
    contacts: int = 0
    imports: int = 0
    exports: int = 0
    jobs_cancelled: int = 0
    pending_uploads_discarded: int = 0


# --- delete-user (event user/deleted) ---------------------------------------------------


class DeleteUserInput(Model):
    user_id: Id


class UserWorkspaces(Model):
    """begin-user-deletion's answer: the workspaces the user owned, split by whether
    anyone else belongs to them."""

    found: bool
    sole_owned: list[str] = []
    shared_owned: list[str] = []


class DeleteUserResult(Model):
    user_id: str
    status: Literal["deleted", "not_found"]
    jobs_cancelled: int = 0
    pending_uploads_discarded: int = 0
    memberships_removed: int = 0
    workspaces_deleted: list[str] = []
    # Owned, with other members: left in place for the operator to hand over.
    workspaces_kept: list[str] = []


ImportCursor.model_rebuild()
ImportResult.model_rebuild()
ProcessCsvInput.model_rebuild()
WeeklyDigestInput.model_rebuild()


# --- enrich-avatars (started by process-csv; issue 25) --------------------------------

WF_ENRICH_AVATARS = "EnrichAvatars"


def avatars_task_queue(task_queue: str) -> str:
    """lookup-avatars's own queue beside `task_queue`: the worker serving it sets the
    server-side dispatch rate that bounds Gravatar requests for the whole cluster."""
    return f"{task_queue}-avatars"


def avatars_workflow_id(import_id: str) -> str:
    return f"avatars-{import_id}"


class EnrichAvatarsInput(Model):
    import_id: Id
    workspace_id: Id
    # Carried across continue-as-new: what earlier runs of this job already did.
    done: SkipJsonSchema[int] = 0
    asked: SkipJsonSchema[int] = 0
    committed: SkipJsonSchema[bool] = False


class AvatarsOf(Model):
    import_id: str
    workspace_id: str


class AvatarPlan(Model):
    """avatars-owed's answer: how much is owed now, whether more can come, and the worker's
    settings for the next pass (recorded in history, so replays see the same)."""

    pending: int
    import_open: bool
    lanes: int
    batch: int
    poll_seconds: float
    lookups_per_run: int = 1000
    # How long one lookup-avatars may take: `batch` requests paced at the rate, the last
    # one's timeout, and the database round trips.
    lookup_timeout_seconds: float


class AvatarBatch(Model):
    import_id: str
    workspace_id: str
    lane: int
    lanes: int
    # The contact id this lane's pass has reached (contacts are read in id order).
    after_id: int
    batch: int


class AvatarBatchResult(Model):
    # Where the lane's pass goes on; None: the lane has read all it owes for now.
    next_after: int | None
    done: int = 0  # avatars written (a hit, or a definite miss)
    asked: int = 0  # requests Gravatar answered or failed
    deferred: int = 0  # addresses another job is asking right now, or Gravatar did not answer
    # Gravatar asked us to wait (429 Retry-After) or the breaker is open: seconds.
    retry_after: float = 0.0


class AvatarProgress(Model):
    import_id: str
    stage: str
    done: int
    pending: int
    asked: int
