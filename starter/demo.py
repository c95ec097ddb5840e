"""Command: demo — the quick start's main job: a demo import end to end on the embedded stack.

Brings the stack up (Temporal + UI, PostgreSQL, Valkey, worker), seeds the demo workspace,
writes a deterministic contact CSV, imports it with a progress bar and prints the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from starter.errors import INTERRUPTED, JOB_FAILED

if TYPE_CHECKING:
    from temporalio.client import Client

    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("demo", help="stack up, seed a workspace, import a generated CSV")
    p.add_argument("--rows", type=int, default=100_000, help="rows in the demo file")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(run=demo)


async def demo(args: argparse.Namespace, settings: Settings) -> None:
    from starter.dev import stopping_line
    from starter.stack import dev_stack, on_signals

    stop = asyncio.Event()
    on_signals(stop.set)
    out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    async with dev_stack(settings, say=say) as (live, client):
        # The demo's work runs beside the stop signal: Ctrl-C ends the work, and the
        # stack still stops in order (the import itself goes on at the next start).
        work = asyncio.create_task(_exit_code(_demo(args, live, client)))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not work.done():
            work.cancel()
            await asyncio.wait({work})
            say(stopping_line(live))
    if not work.cancelled():
        code = work.result()
        if code:
            raise SystemExit(code)
        return
    say(
        "interrupted: a started import goes on where it was when the stack runs again "
        "(`python3 run.py starter dev`, or this demo again)"
    )
    raise SystemExit(INTERRUPTED)


async def _exit_code(work: Coroutine[Any, Any, str]) -> int | str | None:
    """The demo's exit code. A SystemExit (a refusal's one line is printed already) is
    returned, not raised: raised in a task, it would leave the event loop at once,
    before the stack has stopped."""
    try:
        return 0 if await work == "completed" else JOB_FAILED
    except SystemExit as e:
        return e.code


async def _demo(args: argparse.Namespace, live: Settings, client: Client) -> str:
    from folksjobs.api import keys
    from folksjobs.devtools import seed
    from folksjobs.devtools.samples import write_demo_csv
    from folksjobs.infra import db
    from folksjobs.services import open_services
    from starter.cli import parser
    from starter.imports import import_file
    from starter.stack import console_url, describe

    for name, value in describe(live):
        print(f"  {name:<14} {value}", file=sys.stderr if args.json else sys.stdout)
    assert live.database_url
    owner = await db.create_owner_pool(live.database_url)
    try:
        s = await seed.seed_demo(owner)
    finally:
        await owner.close()
    path = write_demo_csv(live.state_dir / "demo" / f"contacts-{args.rows}.csv", args.rows)
    # The import command's own parser: the demo's options can never fall behind the
    # flags `import FILE` reads (a missing one failed the demo once).
    argv = ["import", str(path), "--workspace", s.workspace_id, "--user", s.user_id, "--yes"]
    opts = parser().parse_args(argv + (["--json"] if args.json else []))
    async with open_services(live, pool_size=2) as services:
        summary = await import_file(opts, live, client, services, path)
        _, secret = await keys.create(services.pool, s.workspace_id, "demo console")
    if not args.json:
        print(f"emails: {live.outbox_dir}")
        print(f"console: {console_url(live)}  key {secret}")
        print("  (`python -m starter dev` keeps the stack and the console up)")
    return str(summary.get("status"))
