"""Every workflow and activity input/output, and the names other services rely on.

Payloads carry ids, blob keys, indexes and counts: never rows or email addresses
(they live in Temporal's history, shown in the UI, with a 2 MB payload limit).
Field names are snake_case JSON: `temporal workflow start --input '{"user_id": ...}'`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# Stable names: other services start these over gRPC. Changing one is a breaking change.
TASK_QUEUE = "folksjobs"
WF_PROCESS_CSV = "ProcessCsv"
WF_PROCESS_EXPORT = "ProcessExport"
WF_SEND_WELCOME = "SendWelcome"
WF_WEEKLY_DIGEST = "WeeklyDigest"
WF_WORKSPACE_DIGEST = "WorkspaceDigest"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


def import_workflow_id(import_id: str) -> str:
    return f"import-{import_id}"


def export_workflow_id(export_id: str) -> str:
    return f"export-{export_id}"


def welcome_workflow_id(user_id: str) -> str:
    return f"welcome-{user_id}"


# --- send-welcome (event user/signed.up) ---------------------------------------------


class SendWelcomeInput(Model):
    user_id: str = Field(description="The new user's id in the user directory")


class SendWelcomeResult(Model):
    message_id: str
    backend: str


class WelcomeEmailJob(Model):
    user_id: str
    idempotency_key: str


# --- process-csv (event import/csv.confirmed) ----------------------------------------


class ProcessCsvInput(Model):
    import_id: str
    workspace_id: str
    user_id: str
    # Carried across continue-as-new; callers leave it empty.
    resume: ImportCursor | None = None


class ImportOptions(Model):
    """The worker's import settings, recorded in history so replays see the same values."""

    chunk_rows: int
    sub_batch_rows: int
    parallel_chunks: int
    chunks_per_run: int


class ImportCursor(Model):
    chunk_count: int
    total_rows: int
    next_chunk: int
    chunks_done: int = 0
    rechunks: int = 0
    started_at: datetime
    options: ImportOptions
    counts: ImportCounts


class ImportRecord(Model):
    import_id: str
    workspace_id: str
    user_id: str
    status: str
    blob_key: str
    total_rows: int
    options: ImportOptions


class ChunkPlan(Model):
    import_id: str
    workspace_id: str
    chunk_rows: int


class ChunkPlanResult(Model):
    chunk_count: int
    total_rows: int


class ChunkJob(Model):
    import_id: str
    workspace_id: str
    chunk_index: int
    sub_batch_rows: int


class ChunkResult(Model):
    chunk_index: int
    rows: int
    inserted: int
    updated: int
    failed: int
    duplicates: int


class ImportCounts(Model):
    total_rows: int = 0
    processed_rows: int = 0
    inserted: int = 0
    updated: int = 0
    failed: int = 0
    duplicates: int = 0

    def add(self, r: ChunkResult) -> None:
        # Only ever fed each chunk's ledger result once (see ProcessCsv), never a retry.
        self.processed_rows += r.rows
        self.inserted += r.inserted
        self.updated += r.updated
        self.failed += r.failed
        self.duplicates += r.duplicates


class FinalizeImport(Model):
    import_id: str
    workspace_id: str
    user_id: str
    workflow_id: str
    started_at: datetime


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
    total_rows: int
    inserted: int
    updated: int
    failed: int
    duplicates: int
    error_samples: list[ErrorSample] = []
    ai_summary: str | None = None
    duration_ms: int = 0


class ImportProgress(Model):
    import_id: str
    stage: str
    chunks_total: int
    chunks_done: int
    counts: ImportCounts


# --- process-export (event export/csv.confirmed) -------------------------------------


class ProcessExportInput(Model):
    export_id: str
    workspace_id: str
    user_id: str


class ExportResult(Model):
    export_id: str
    status: Literal["completed", "failed"]
    row_count: int
    blob_key: str
    location: str


# --- weekly-digest (Schedule 0 8 * * 1) ----------------------------------------------


class WeeklyDigestInput(Model):
    # The Monday 08:00 UTC the run reports on; empty => the schedule's scheduled time.
    scheduled_for: datetime | None = None


ImportCursor.model_rebuild()
ProcessCsvInput.model_rebuild()
