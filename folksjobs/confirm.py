"""The confirm step: a pending upload or a new export becomes its event, and its event a run.

Every caller (the CLI, the HTTP API, tests) goes through these functions, so an import or
an export starts one way: the record moves first, then `events.dispatch` starts the
workflow with its deterministic id, so a repeated confirmation finds the same run.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg
from temporalio.client import Client, WorkflowHandle

from folksjobs.events import Dispatched, ExportCsvConfirmed, ImportCsvConfirmed, dispatch
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.mapping import validate_mapping
from folksjobs.imports.uploads import UploadRefused
from folksjobs.models import import_workflow_id
from folksjobs.settings import Settings


async def confirm_import(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    workspace_id: str,
    import_id: str,
    mapping: list[str] | None = None,
) -> WorkflowHandle[object, object]:
    """The event import/csv.confirmed: pending -> processing, then start ProcessCsv."""
    rec = await imports_repo.get(pool, workspace_id, import_id)
    if rec is None:
        raise UploadRefused(f"import {import_id} not found in workspace {workspace_id}")
    chosen = mapping if mapping is not None else rec.column_mapping
    validate_mapping(chosen)
    wid = import_workflow_id(import_id)
    await imports_repo.confirm(pool, workspace_id, import_id, chosen, wid)
    event = ImportCsvConfirmed(
        import_id=UUID(import_id), workspace_id=UUID(workspace_id), user_id=UUID(rec.user_id)
    )
    # The UI's summary line names what a person recognises: the file, and where it goes.
    # A file name can be personal data ("jane.doe contacts.csv"), so it is only named when
    # payloads, summaries included, are encrypted; otherwise the import id stands for it.
    what = rec.file_name if settings.payload_encryption_keys is not None else import_id
    summary = f"CSV import {what} ({rec.total_rows:,} rows) into workspace {workspace_id}"
    started = await dispatch(client, settings, event, summary=summary)
    return client.get_workflow_handle(started.workflow_id)


async def start_export(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    workspace_id: str,
    user_id: str | None,
    tag_names: Sequence[str],
) -> tuple[str, Dispatched]:
    """The event export/csv.confirmed: a pending export record, then ProcessExport.

    Raises exports_repo.InvalidExportRequest for an unknown tag or user; nothing starts.
    """
    export_id, user = await exports_repo.create_export(pool, workspace_id, user_id, tag_names)
    event = ExportCsvConfirmed(
        export_id=UUID(export_id), workspace_id=UUID(workspace_id), user_id=UUID(user)
    )
    return export_id, await dispatch(client, settings, event)
