"""Commands: import FILE (upload, preview, confirm, watch) and, for an import id:
import status | cancel | confirm [--map ...] | discard.

An upload that is not confirmed (no terminal to ask, no --yes) stays pending: its id is
printed with the commands that confirm or discard it; DISCARD_STALE_UPLOADS removes the
ones nobody confirms after PENDING_UPLOAD_TTL_SECONDS (workflows/discard_uploads.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID

from starter.common import emit, fail, ui_link
from starter.errors import JOB_FAILED

if TYPE_CHECKING:
    from rich.console import Console
    from temporalio.client import Client

    from folksjobs.imports.uploads import UploadResult
    from folksjobs.services import Services
    from folksjobs.settings import Settings

ID_VERBS = ("status", "cancel", "confirm", "discard")
# A mapping's refusal names the column and field; the command adds its own syntax.
MAP_HINT = "change the mapping with --map 'HEADER=FIELD'"
# A run's stages before its chunks move (fetch-import: runs started before claim-import).
BEFORE_CHUNKS = ("starting", "claim-import", "fetch-import")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="import a CSV file (event import/csv.confirmed); also "
        "`import status|cancel|confirm|discard ID`",
        description="import FILE --workspace W [--map HEADER=FIELD ...] [--yes] [--json] "
        "| import status ID | import cancel ID | import confirm ID [--map ...] "
        "| import discard ID",
    )
    p.add_argument("target", nargs="+", metavar="FILE | {status,cancel,confirm,discard} ID")
    p.add_argument("--workspace", help="workspace id (required for FILE)")
    p.add_argument("--user", help="the importing user's id (default: the workspace owner)")
    p.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                   help="override the suggested mapping: email, first_name, last_name, "
                   "company, phone, tags (names separated by ;), custom:<name> "
                   "or skip")  # fmt: skip
    p.add_argument("--encoding", help="the file's encoding when detection gets it wrong "
                   "(a Python codec name: cp1252, cp1250, shift_jis, gb18030 ...)")  # fmt: skip
    p.add_argument("--yes", action="store_true", help="confirm without asking (scripts)")
    p.add_argument("--no-wait", action="store_true", help="start and return at once")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.services import open_services
    from starter.common import connect

    verb = args.target[0]
    if verb in ID_VERBS and len(args.target) == 2:
        if verb in ("confirm", "discard"):
            await pending_cmd(args, settings, verb, args.target[1])
            return
        client = await connect(settings)
        await (status if verb == "status" else cancel)(args, settings, client, args.target[1])
        return
    if len(args.target) != 1:
        fail("usage: import FILE --workspace W | import {status,cancel,confirm,discard} ID")
    if not args.workspace:
        fail("--workspace is required to import a file")
    client = await connect(settings)
    async with open_services(settings, pool_size=2) as services:
        summary = await import_file(args, settings, client, services, Path(args.target[0]))
    if summary.get("status") not in (None, "completed", "running"):
        raise SystemExit(JOB_FAILED)


async def import_file(args: argparse.Namespace, settings: Settings, client: Client,
                      services: Services, path: Path) -> dict[str, Any]:  # fmt: skip
    from rich.console import Console

    from folksjobs.confirm import confirm_import
    from folksjobs.events import EventError
    from folksjobs.imports.mapping import MappingError
    from folksjobs.imports.uploads import UploadRefused, upload_csv
    from folksjobs.tenancy import NotAMember, WorkspaceNotFound, require_member, workspace_owner

    out = Console(stderr=True) if args.json else Console()
    if not path.is_file():  # noqa: ASYNC240 - one stat before a long upload
        fail(f"{path}: no such file")
    try:
        user = args.user or await workspace_owner(services.pool, args.workspace)
    except WorkspaceNotFound as e:
        fail(f"{e}: `python -m starter seed --json` prints the demo workspace's id")
    try:
        # The import's emails go to this user: never to someone outside the workspace.
        await require_member(services.pool, args.workspace, user)
    except NotAMember as e:
        fail(str(e))
    t0 = time.monotonic()
    try:
        with path.open("rb") as fh, out.status(f"uploading {path.name} ..."):
            up = await upload_csv(services.pool, services.blob, settings, fh, path.name,
                                  args.workspace, user, args.map, args.encoding)  # fmt: skip
    except UploadRefused as e:
        fail(str(e))
    except MappingError as e:
        fail(f"{e}; {MAP_HINT}")
    upload_s = time.monotonic() - t0
    show_preview(out, up, upload_s)
    if not args.yes and not _ask(f"Import {up.total_rows:,} rows into workspace {args.workspace}?"):
        _left_pending(args, up)
    try:
        handle = await confirm_import(client, services.pool, settings, args.workspace, up.import_id)
    except MappingError as e:
        fail(f"{e}; {MAP_HINT} (`python -m starter import confirm {up.import_id} --map ...`)")
    except EventError as e:
        fail(str(e))
    link = ui_link(settings, handle.id)
    if args.no_wait:
        data = {
            "import_id": up.import_id,
            "workflow_id": handle.id,
            "status": "running",
            "ui": link,
        }
        emit(args, data, f"started {handle.id}\n  {link}")
        return data
    out.print(f"workflow [bold]{handle.id}[/]  {link}")
    summary = await watch(client, handle.id, up.total_rows, out)
    summary.update(import_id=up.import_id, workflow_id=handle.id,
                   upload_seconds=round(upload_s, 3), file_bytes=up.file_bytes)  # fmt: skip
    emit(args, summary, format_summary(summary))
    return summary


def show_preview(out: Console, up: UploadResult, seconds: float) -> None:
    from rich.table import Table

    out.print(
        f"uploaded {up.file_name}: {up.file_bytes:,} bytes, {up.total_rows:,} rows in "
        f"{seconds:.1f} s (encoding {up.format.encoding}, delimiter {up.format.delimiter!r})"
    )
    for w in up.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    table = Table(title="preview", show_lines=False)
    for h, m in zip(up.headers, up.mapping, strict=True):
        table.add_column(f"{h}\n→ {m or 'skip'}", overflow="fold", max_width=24)
    for row in up.preview:
        table.add_row(*[(row[i] if i < len(row) else "") for i in range(len(up.headers))])
    out.print(table)


def _ask(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _left_pending(args: argparse.Namespace, up: UploadResult) -> NoReturn:
    """Not confirmed (no terminal to ask, or "no"): the upload waits as a pending import."""
    why = "answered no" if sys.stdin.isatty() else "no terminal to ask and no --yes"
    data = {"import_id": up.import_id, "status": "pending", "total_rows": up.total_rows,
            "confirm": f"python -m starter import confirm {up.import_id}",
            "discard": f"python -m starter import discard {up.import_id}"}  # fmt: skip
    emit(args, data, f"import {up.import_id} is pending ({why}); to go on:\n"
                     f"  {data['confirm']}    (add --map HEADER=FIELD to change the mapping)\n"
                     f"  {data['discard']}")  # fmt: skip
    raise SystemExit(JOB_FAILED)


async def watch(client: Client, workflow_id: str, total: int, out: Console) -> dict[str, Any]:
    """A live bar from the `progress` query until the run (and its continuations) ends.

    download-and-chunk has its own line, fed by its heartbeat (rows written to Redis),
    above the rows processed.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

    handle = client.get_workflow_handle(workflow_id)
    columns = [
        TextColumn("[bold]{task.fields[stage]:<18}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows {task.fields[rate]:>9} rows/s"), TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]  # fmt: skip
    t0 = time.monotonic()
    with Progress(*columns, console=out, transient=False) as bar:
        # Chunking runs alongside the chunks it has written: one line each, so the rows
        # processed never read "0/N" for the whole time the file is being chunked.
        chunk_task = bar.add_task("chunk", total=total or 1, stage="download-and-chunk",
                                  rate="-")  # fmt: skip
        task = bar.add_task("import", total=total or 1, stage="starting", rate="-")
        chunking = True
        result_task = asyncio.ensure_future(handle.result())
        try:
            while not result_task.done():
                try:
                    if chunking:
                        chunked = await chunking_progress(client, workflow_id)
                        if chunked is not None:
                            rate = chunked / max(time.monotonic() - t0, 1e-6)
                            bar.update(chunk_task, completed=chunked, rate=f"{rate:,.0f}")
                        elif bar.tasks[task].fields["stage"] not in BEFORE_CHUNKS:
                            chunking = False
                            rate = total / max(time.monotonic() - t0, 1e-6)
                            bar.update(chunk_task, completed=total, rate=f"{rate:,.0f}")
                    p = await handle.query("progress")
                    done = p["counts"]["processed_rows"]
                    # Until chunk 1 is in Redis, the chunk line above is where things move.
                    stage = p["stage"]
                    if stage == "download-and-chunk":
                        stage = "waiting for chunk"
                    rate = done / max(time.monotonic() - t0, 1e-6)
                    bar.update(task, completed=done, stage=stage, rate=f"{rate:,.0f}")
                except Exception:  # the run may be between continue-as-new runs: ask again
                    pass
                await asyncio.wait({result_task}, timeout=0.5)
        finally:
            # A watch that is cancelled (Ctrl-C in the demo) leaves no long poll behind to
            # retry against a Temporal that is being stopped.
            result_task.cancel()
        bar.update(chunk_task, completed=total)
        try:
            result: dict[str, Any] = result_task.result()
        except WorkflowFailureError as e:
            desc = await handle.describe()
            status = "cancelled" if desc.status == WorkflowExecutionStatus.CANCELED else "failed"
            bar.update(task, stage=status)
            return {"status": status, "error": str(e.cause or e), "total_rows": total}
        bar.update(task, completed=result["total_rows"], stage="completed")
    result["duration_seconds"] = round(result.get("duration_ms", 0) / 1000, 3)
    return result


async def chunking_progress(client: Client, workflow_id: str) -> int | None:
    """Rows download-and-chunk has written so far (its heartbeat), None when not running."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name != "download-and-chunk":
            continue
        if not pending.heartbeat_details.payloads:
            return 0
        [details] = await client.data_converter.decode(pending.heartbeat_details.payloads)
        return int(details.get("rows", 0)) if isinstance(details, dict) else 0
    return None


def format_summary(s: dict[str, Any]) -> str:
    if s.get("status") != "completed":
        return f"import {s.get('import_id')} {s.get('status')}: {s.get('error', '')}"
    lines = [
        f"import {s['import_id']} completed in {s['duration_seconds']:.1f} s",
        f"  rows       {s['total_rows']:>12,}",
        f"  inserted   {s['inserted']:>12,}",
        f"  updated    {s['updated']:>12,}",
        f"  unchanged  {s.get('unchanged', 0):>12,}",
        f"  failed     {s['failed']:>12,}",
        f"  duplicates {s['duplicates']:>12,}",
        f"  summary    {s.get('ai_summary') or '-'}",
    ]
    if s.get("error_samples"):
        lines.append("  first errors:")
        lines += [f"    row {e['row']}: {e['reason']}" for e in s["error_samples"]]
    return "\n".join(lines)


async def status(
    args: argparse.Namespace, settings: Settings, client: Client, import_id: str
) -> None:
    from temporalio.client import WorkflowExecutionStatus

    from folksjobs.models import import_workflow_id

    handle = client.get_workflow_handle(import_workflow_id(import_id))
    desc = await _describe_or_fail(handle, import_id)
    data: dict[str, Any] = {"import_id": import_id, "workflow_id": handle.id,
                            "status": desc.status.name.lower() if desc.status else "unknown",
                            "ui": ui_link(settings, handle.id)}  # fmt: skip
    if desc.status == WorkflowExecutionStatus.RUNNING:
        data["progress"] = await handle.query("progress")
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        data["result"] = await handle.result()
    emit(args, data, format_status(data))


def format_status(data: dict[str, Any]) -> str:
    """`import status` as a person reads it: the counts as a table, the link to the run."""
    lines = [f"import {data['import_id']}  {data['status']}", f"  workflow   {data['workflow_id']}"]
    progress, result = data.get("progress"), data.get("result")
    counts: dict[str, Any] = {}
    if progress:
        counts = progress["counts"]
        lines.append(f"  stage      {progress['stage']} (chunk {progress['chunks_done']}/"
                     f"{progress['chunks_total']})")  # fmt: skip
        lines.append(f"  rows       {counts['processed_rows']:>12,} of {counts['total_rows']:,}")
    elif result:
        counts = result
        lines.append(f"  rows       {result['total_rows']:>12,}")
    for k in ("inserted", "updated", "unchanged", "failed", "duplicates"):
        if k in counts:
            lines.append(f"  {k:<10} {counts[k]:>12,}")
    if result:
        lines.append(f"  took       {result.get('duration_ms', 0) / 1000:>12.1f} s")
        lines.append(f"  summary    {result.get('ai_summary') or '-'}")
        lines += [f"  row {e['row']}: {e['reason']}" for e in result.get("error_samples", [])]
    lines.append(f"  UI         {data['ui']}")
    return "\n".join(lines)


async def _describe_or_fail(handle: Any, import_id: str) -> Any:
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await handle.describe()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        fail(f"no import {import_id} has run (no workflow {handle.id}); a pending upload is "
             f"started with `python -m starter import confirm {import_id}`")  # fmt: skip


async def cancel(
    args: argparse.Namespace, settings: Settings, client: Client, import_id: str
) -> None:
    from folksjobs.models import import_workflow_id

    handle = client.get_workflow_handle(import_workflow_id(import_id))
    await _describe_or_fail(handle, import_id)
    await handle.cancel()
    emit(args, {"import_id": import_id, "workflow_id": handle.id, "cancel_requested": True},
         f"cancel requested for {handle.id}")  # fmt: skip


async def pending_cmd(
    args: argparse.Namespace, settings: Settings, verb: str, import_id: str
) -> None:
    """`import confirm ID [--map ...]` and `import discard ID`: a pending upload's two ends."""
    from folksjobs.confirm import confirm_import
    from folksjobs.events import EventError
    from folksjobs.imports import lifecycle
    from folksjobs.imports import repo as imports_repo
    from folksjobs.imports.mapping import MappingError, apply_overrides
    from folksjobs.imports.uploads import UploadRefused
    from folksjobs.services import open_services
    from starter.common import connect

    try:
        UUID(import_id)
        if args.workspace:
            UUID(args.workspace)
    except ValueError:
        fail(f"{args.workspace if args.workspace else import_id!r} is not an id (a UUID)")
    async with open_services(settings, pool_size=2) as services:
        ws = args.workspace or await imports_repo.workspace_of(services.pool, import_id)
        rec = await imports_repo.get(services.pool, ws, import_id) if ws else None
        if rec is None:
            fail(f"import {import_id} not found"
                 + (f" in workspace {args.workspace}" if args.workspace else ""))  # fmt: skip
        if rec.status != "pending":
            fail(f"import {import_id} is {rec.status}, not pending: nothing to {verb} "
                 f"(see `python -m starter import status {import_id}`)")  # fmt: skip
        if verb == "discard":
            if not await lifecycle.discard(services.pool, rec.workspace_id,
                                                      import_id, services.blob.delete):  # fmt: skip
                fail(f"import {import_id} was confirmed or discarded meanwhile: "
                     f"see `python -m starter import status {import_id}`")  # fmt: skip
            emit(args, {"import_id": import_id, "status": "discarded"},
                 f"import {import_id} discarded (record and file deleted)")  # fmt: skip
            return
        try:
            mapping = apply_overrides(rec.headers, rec.column_mapping, args.map)
            client = await connect(settings)
            handle = await confirm_import(client, services.pool, settings, rec.workspace_id,
                                          import_id, mapping)  # fmt: skip
        except MappingError as e:
            fail(f"{e}; {MAP_HINT}")
        except (UploadRefused, EventError) as e:
            fail(str(e))
    link = ui_link(settings, handle.id)
    if args.no_wait or args.json:
        data = {"import_id": import_id, "workflow_id": handle.id, "status": "running", "ui": link}
        if not args.no_wait:
            summary = await watch_quietly(handle)
            data.update(summary)
        emit(args, data, f"started {handle.id}\n  {link}")
        if data["status"] not in ("running", "completed"):
            raise SystemExit(JOB_FAILED)
        return
    from rich.console import Console

    out = Console()
    out.print(f"workflow [bold]{handle.id}[/]  {link}")
    summary = await watch(client, handle.id, rec.total_rows, out)
    summary.update(import_id=import_id, workflow_id=handle.id)
    emit(args, summary, format_summary(summary))
    if summary.get("status") != "completed":
        raise SystemExit(JOB_FAILED)


async def watch_quietly(handle: Any) -> dict[str, Any]:
    from temporalio.client import WorkflowFailureError

    from starter.errors import root_cause

    try:
        result: dict[str, Any] = await handle.result()
    except WorkflowFailureError as e:
        return {"status": "failed", "error": str(root_cause(e))}
    return result
