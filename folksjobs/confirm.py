"""The confirm step: a pending upload or a new export becomes its event, and its event a run.

Every caller (the CLI, the HTTP API, tests) goes through these functions, so an import or
an export starts one way: `events.dispatch` starts the workflow with its deterministic id,
so a repeated confirmation finds the same run. An import's record is moved by the run's
first step (`imports.lifecycle.claim`), which is where its preconditions are checked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from uuid import UUID

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from folksjobs.events import Dispatched, ExportCsvConfirmed, ImportCsvConfirmed, dispatch
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.repo import ImportRow
from folksjobs.imports.uploads import UploadRefused
from folksjobs.models import ProcessCsvInput, import_workflow_id
from folksjobs.settings import Settings


async def confirm_import(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    workspace_id: str,
    import_id: str,
    mapping: list[str] | None = None,
    *,
    record: ImportRow | None = None,
) -> WorkflowHandle[object, object]:
    """The event import/csv.confirmed: the chosen mapping saved, then ProcessCsv started.
    Its first step, claim-import, checks what a run needs and moves the record pending ->
    processing, for this start and for one another service makes over gRPC alike.

    `record`: the row the caller already read (the API's route), passed on, not read again.

    An open run under the import's id that was started for another workspace or user (a
    caller squatting the id) is terminated and the rightful run started (id reuse policy
    ALLOW_DUPLICATE_FAILED_ONLY), so the record never stays `processing` alone.
    """
    rec = record
    if mapping is not None:
        # None once confirmed: a repeated confirmation finds the same run, mapping as it was.
        rec = await lifecycle.save_mapping(pool, workspace_id, import_id, mapping) or rec
    if rec is None:
        rec = await imports_repo.get(pool, workspace_id, import_id)
    if rec is None:
        raise UploadRefused(f"import {import_id} not found in workspace {workspace_id}")
    wid = import_workflow_id(import_id)
    event = ImportCsvConfirmed(
        import_id=UUID(import_id), workspace_id=UUID(workspace_id), user_id=UUID(rec.user_id)
    )
    # The UI's summary line names what a person recognises: the file, and where it goes.
    # A file name can be personal data ("jane.doe contacts.csv"), so it is only named when
    # payloads, summaries included, are encrypted; otherwise the import id stands for it.
    what = rec.file_name if settings.payload_encryption_keys is not None else import_id
    summary = f"CSV import {what} ({rec.total_rows:,} rows) into workspace {workspace_id}"
    started = await dispatch(client, settings, event, summary=summary)
    if not started.started and not await _runs_for(client, started, event):
        # The id is this import's by contract; a run under it for other ids can do nothing
        # for this import (claim-import refuses it), and may sit on a task queue no worker
        # polls: it is ended, not waited for.
        with contextlib.suppress(RPCError):  # it closed meanwhile
            await client.get_workflow_handle(wid, run_id=started.run_id).terminate(
                f"squatted the id of import {import_id} with other ids"
            )
        started = await dispatch(client, settings, event, summary=summary)
    return client.get_workflow_handle(started.workflow_id)


async def _runs_for(client: Client, started: Dispatched, event: ImportCsvConfirmed) -> bool:
    """Whether the open run under the import's id was started with this event's ids."""
    handle = client.get_workflow_handle(started.workflow_id, run_id=started.run_id)
    async for e in handle.fetch_history_events():
        payloads = e.workflow_execution_started_event_attributes.input.payloads
        try:
            [inp] = await client.data_converter.decode(payloads, [ProcessCsvInput])
        except Exception:  # an input that does not even decode is not ours
            return False
        return (inp.import_id, inp.workspace_id, inp.user_id) == (
            str(event.import_id),
            str(event.workspace_id),
            str(event.user_id),
        )
    return False


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
    return export_id, await dispatch(client, settings, event, pool=pool)
