"""Commands: export (event export/csv.confirmed), export status and export cancel.

python -m starter export --workspace W [--tag NAME ...] [--user U] [--no-wait] [--json]
python -m starter export status EXPORT_ID [--json]
python -m starter export cancel EXPORT_ID [--json]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING, Any

from starter.common import add_json_flag, database_url, emit, fail, ui_link

if TYPE_CHECKING:
    from temporalio.client import WorkflowHandle

    from folksjobs.settings import Settings

POLL_SECONDS = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a workspace's contacts to CSV (event export/csv.confirmed)",
        description="Create an export and run it; `export status ID` shows one.",
    )
    p.add_argument("--workspace", metavar="W", help="the workspace id")
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="NAME",
        help="only contacts carrying ANY of these tags (repeatable)",
    )
    p.add_argument("--user", metavar="U", help="who asked (gets the email); default: the owner")
    p.add_argument("--no-wait", action="store_true", help="start it and return at once")
    add_json_flag(p)
    p.set_defaults(run=export_cmd)
    actions = p.add_subparsers(dest="export_action", metavar="status|cancel")
    s = actions.add_parser("status", help="an export's record and its workflow's progress")
    s.add_argument("export_id")
    add_json_flag(s)
    s.set_defaults(run=status_cmd)
    c = actions.add_parser("cancel", help="stop a running export (status cancelled, no file)")
    c.add_argument("export_id")
    add_json_flag(c)
    c.set_defaults(run=cancel_cmd)


async def _download_location(settings: Settings, blob_key: str) -> str:
    """For a person: the local path, or the s3:// key with a presigned download URL."""
    from folksjobs.infra.blob import build_blob_store

    store = build_blob_store(settings)
    try:
        return await store.location(blob_key)
    finally:
        await store.close()


async def _watch(handle: WorkflowHandle[Any, Any]) -> None:
    """A progress bar fed by the workflow's `progress` query until it finishes."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )
    from temporalio.service import RPCError

    from folksjobs.models import ExportProgress

    result = asyncio.ensure_future(handle.result())
    columns = (
        TextColumn("[bold]{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("starting", total=None)
        while not result.done():
            try:
                p = await handle.query("progress", result_type=ExportProgress)
                bar.update(task, description=p.stage, completed=p.rows_written, total=p.total_rows)
            except RPCError:
                pass  # no worker has picked the workflow up yet
            await asyncio.wait([result], timeout=POLL_SECONDS)
        if not result.exception():
            p = await handle.query("progress", result_type=ExportProgress)
            bar.update(task, description=p.stage, completed=p.rows_written, total=p.total_rows)
    await result


async def export_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from temporalio.client import WorkflowFailureError

    from folksjobs import errors
    from folksjobs.catalog import JobDisabled
    from folksjobs.confirm import start_export
    from folksjobs.exports import repo as exports
    from folksjobs.infra import db
    from folksjobs.models import ExportResult
    from starter.common import connect

    if not args.workspace:
        fail("--workspace is required (or `export status ID`)")
    client = await connect(settings)
    pool = await db.create_pool(database_url(settings), max_size=2)
    # The event export/csv.confirmed, started as the HTTP API starts it (folksjobs.confirm).
    try:
        export_id, started = await start_export(
            client, pool, settings, args.workspace, args.user, args.tag
        )
    except (exports.InvalidExportRequest, JobDisabled) as e:
        fail(str(e))
        raise
    finally:
        await pool.close()
    wid = started.workflow_id
    handle = client.get_workflow_handle(wid, run_id=started.run_id, result_type=ExportResult)
    data: dict[str, Any] = {
        "export_id": export_id,
        "workflow_id": wid,
        "ui": ui_link(settings, wid),
    }
    if args.no_wait:
        emit(
            args,
            data,
            f"export {export_id} started\n  {data['ui']}\n"
            f"  python -m starter export status {export_id}",
        )
        return
    try:
        if args.json:
            await handle.result()
        else:
            print(f"export {export_id}  {data['ui']}")
            await _watch(handle)
    except WorkflowFailureError as e:
        fail(f"export {export_id} failed: {errors.root_message(e)}", code=1)
    result = await handle.result()
    location = await _download_location(settings, result.blob_key)
    data.update(
        status=result.status,
        row_count=result.row_count,
        blob_key=result.blob_key,
        location=location,
    )
    emit(args, data, f"{result.row_count:,} contacts exported\n  {location}")


async def status_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from temporalio.client import Client, WorkflowExecutionStatus
    from temporalio.service import RPCError

    from folksjobs.exports import repo as exports
    from folksjobs.infra import db
    from folksjobs.models import ExportProgress, export_workflow_id
    from starter.common import connect

    owner = await db.create_owner_pool(database_url(settings), max_size=1)
    try:
        record = await exports.get_export(owner, args.export_id)
    except exports.ExportNotFound as e:
        fail(str(e))
        raise
    finally:
        await owner.close()
    client: Client = await connect(settings)
    wid = export_workflow_id(record["id"])
    data: dict[str, Any] = {**record, "ui": ui_link(settings, wid)}
    try:
        handle = client.get_workflow_handle(wid)
        desc = await handle.describe()
        data["workflow_status"] = desc.status.name if desc.status else None
        if desc.status == WorkflowExecutionStatus.RUNNING:
            p = await handle.query("progress", result_type=ExportProgress)
            data["progress"] = p.model_dump()
    except RPCError as e:
        data["workflow_status"] = f"unknown ({e.message})"
    gone = exports.file_gone(record, settings.export_retention_hours)
    if gone:
        data["file_gone"] = gone
    elif record["status"] == "completed" and record["blob_key"]:
        data["location"] = await _download_location(settings, record["blob_key"])
    lines = [
        f"export {record['id']}: {record['status']} (workflow {data['workflow_status']})",
        f"  workspace {record['workspace_id']}, tags {record['tag_names'] or 'none'}",
        f"  rows {record['row_count']:,}, bytes {record['file_bytes']:,}",
    ]
    if "progress" in data:
        p = data["progress"]
        lines.append(f"  {p['stage']}: {p['rows_written']:,} / {p['total_rows'] or '?'} rows")
    if "location" in data:
        lines.append(f"  {data['location']}")
    if gone:
        lines.append(f"  {gone}")
    if record["error_log"]:
        lines.append(f"  error: {record['error_log'].get('error')}")
    lines.append(f"  {data['ui']}")
    emit(args, data, "\n".join(lines))


async def cancel_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.exports import repo as exports
    from folksjobs.exports.cancel import NotRunning, cancel_export
    from folksjobs.infra import db
    from folksjobs.models import export_workflow_id
    from starter.common import connect

    owner = await db.create_owner_pool(database_url(settings), max_size=1)
    pool = await db.create_pool(database_url(settings), max_size=1)
    try:
        record = await exports.get_export(owner, args.export_id)
        await cancel_export(await connect(settings), pool, record)
    except (exports.ExportNotFound, NotRunning) as e:
        fail(str(e))
    finally:
        await owner.close()
        await pool.close()
    wid = export_workflow_id(record["id"])
    emit(
        args,
        {"export_id": args.export_id, "workflow_id": wid, "cancel_requested": True},
        f"cancel requested for {wid}: its unfinished file is deleted",
    )
