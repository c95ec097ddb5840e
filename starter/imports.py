"""Commands: import FILE (upload, preview, confirm, watch) | import status ID | import cancel ID."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.imports.mapping import MappingError
from folksjobs.imports.uploads import UploadRefused, UploadResult, upload_csv
from folksjobs.infra.temporal import connect
from folksjobs.models import import_workflow_id
from folksjobs.services import Services, open_services
from folksjobs.settings import Settings
from starter.common import emit, fail, ui_link


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import",
        help="import a CSV file (event import/csv.confirmed); also `import status|cancel ID`",
        description="import FILE --workspace W [--map HEADER=FIELD ...] [--yes] [--json] "
        "| import status IMPORT_ID | import cancel IMPORT_ID",
    )
    p.add_argument("target", nargs="+", metavar="FILE | status ID | cancel ID")
    p.add_argument("--workspace", help="workspace id (required for FILE)")
    p.add_argument("--user", help="the importing user's id (default: the workspace owner)")
    p.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD",
                   help="override the suggested mapping: email, first_name, last_name, "
                   "company, phone, custom:<name> or skip")  # fmt: skip
    p.add_argument("--yes", action="store_true", help="confirm without asking (scripts)")
    p.add_argument("--no-wait", action="store_true", help="start and return at once")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(run=run)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    verb = args.target[0]
    if verb in ("status", "cancel") and len(args.target) == 2:
        client = await connect(settings)
        await (status if verb == "status" else cancel)(args, settings, client, args.target[1])
        return
    if len(args.target) != 1:
        fail("usage: import FILE --workspace W | import status ID | import cancel ID")
    if not args.workspace:
        fail("--workspace is required to import a file")
    client = await connect(settings)
    async with open_services(settings, pool_size=2) as services:
        summary = await import_file(args, settings, client, services, Path(args.target[0]))
    if summary.get("status") not in (None, "completed", "running"):
        raise SystemExit(1)


async def import_file(args: argparse.Namespace, settings: Settings, client: Client,
                      services: Services, path: Path) -> dict[str, Any]:  # fmt: skip
    out = Console(stderr=True) if args.json else Console()
    if not path.is_file():  # noqa: ASYNC240 - one stat before a long upload
        fail(f"{path}: no such file")
    user = args.user or await services.pool.fetchval(
        "SELECT owner_user_id::text FROM workspaces WHERE id = $1::uuid", args.workspace
    )
    if not user:
        fail(f"workspace {args.workspace} not found")
    t0 = time.monotonic()
    try:
        with path.open("rb") as fh, out.status(f"uploading {path.name} ..."):
            up = await upload_csv(services.pool, services.blob, settings, fh, path.name,
                                  args.workspace, user, args.map)  # fmt: skip
    except (UploadRefused, MappingError) as e:
        fail(str(e))
    upload_s = time.monotonic() - t0
    show_preview(out, up, upload_s)
    if not args.yes and not _ask(f"Import {up.total_rows:,} rows into workspace {args.workspace}?"):
        fail("not confirmed; the upload is kept as a pending import", code=1)
    try:
        handle = await confirm_import(client, services.pool, settings, args.workspace, up.import_id)
    except MappingError as e:
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


async def watch(client: Client, workflow_id: str, total: int, out: Console) -> dict[str, Any]:
    """A live bar from the `progress` query until the run (and its continuations) ends."""
    handle = client.get_workflow_handle(workflow_id)
    columns = [
        TextColumn("[bold]{task.fields[stage]:<18}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("rows {task.fields[rate]:>9} rows/s"), TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]  # fmt: skip
    t0 = time.monotonic()
    with Progress(*columns, console=out, transient=False) as bar:
        task = bar.add_task("import", total=total or 1, stage="starting", rate="-")
        result_task = asyncio.ensure_future(handle.result())
        while not result_task.done():
            try:
                p = await handle.query("progress")
                done = p["counts"]["processed_rows"]
                rate = done / max(time.monotonic() - t0, 1e-6)
                bar.update(task, completed=done, stage=p["stage"], rate=f"{rate:,.0f}")
            except Exception:  # the run may be between continue-as-new runs: ask again
                pass
            await asyncio.wait({result_task}, timeout=0.5)
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


def format_summary(s: dict[str, Any]) -> str:
    if s.get("status") != "completed":
        return f"import {s.get('import_id')} {s.get('status')}: {s.get('error', '')}"
    lines = [
        f"import {s['import_id']} completed in {s['duration_seconds']:.1f} s",
        f"  rows       {s['total_rows']:>12,}",
        f"  inserted   {s['inserted']:>12,}",
        f"  updated    {s['updated']:>12,}",
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
    handle = client.get_workflow_handle(import_workflow_id(import_id))
    desc = await handle.describe()
    data: dict[str, Any] = {"import_id": import_id, "workflow_id": handle.id,
                            "status": desc.status.name.lower() if desc.status else "unknown",
                            "ui": ui_link(settings, handle.id)}  # fmt: skip
    if desc.status == WorkflowExecutionStatus.RUNNING:
        data["progress"] = await handle.query("progress")
    elif desc.status == WorkflowExecutionStatus.COMPLETED:
        data["result"] = await handle.result()
    emit(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))


async def cancel(
    args: argparse.Namespace, settings: Settings, client: Client, import_id: str
) -> None:
    handle = client.get_workflow_handle(import_workflow_id(import_id))
    await handle.cancel()
    emit(args, {"import_id": import_id, "workflow_id": handle.id, "cancel_requested": True},
         f"cancel requested for {handle.id}")  # fmt: skip
