"""Commands: worker, migrate, seed, welcome."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from starter.common import (
    add_json_flag,
    database_url,
    emit,
    fail,
    result_reporting_waits,
    ui_link,
)
from starter.errors import ENVIRONMENT

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("worker", help="run a worker until SIGTERM (same as `python worker.py`)")
    p.set_defaults(run=worker)

    p = sub.add_parser("migrate", help="apply the SQL migrations (idempotent)")
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="apply nothing: wait up to SECONDS until another process (the release's setup "
        "Job) has applied every migration of this build; exit 1 if it has not",
    )
    add_json_flag(p)
    p.set_defaults(run=migrate)

    p = sub.add_parser("seed", help="create the demo workspace, its owner and settings")
    add_json_flag(p)
    p.set_defaults(run=seed_cmd)

    p = sub.add_parser("welcome", help="send the welcome email (event user/signed.up)")
    p.add_argument("--user-id", required=True)
    p.add_argument("--wait", action="store_true", help="wait for the email to be sent")
    add_json_flag(p)
    p.set_defaults(run=welcome)


async def worker(args: argparse.Namespace, settings: Settings) -> None:
    from worker import serve

    await serve(settings)


async def migrate(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.infra import db

    dsn = database_url(settings)
    if args.wait is not None:
        try:
            async with asyncio.timeout(args.wait):
                await db.wait_for_migrations(dsn)
        except TimeoutError:
            pending = ", ".join(await db.pending_migrations(dsn))
            fail(
                f"migrations not applied after {args.wait:g}s: {pending}; run this "
                "release's setup Job (`folksjobs migrate`)",
                code=ENVIRONMENT,
            )
        emit(args, {"pending": []}, "every migration of this build is applied")
        return
    applied = await db.migrate(dsn)
    emit(args, {"applied": applied}, f"applied: {', '.join(applied) or 'nothing (up to date)'}")


async def seed_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.devtools import seed
    from folksjobs.infra import db

    dsn = database_url(settings)
    await db.migrate(dsn)
    pool = await db.create_owner_pool(dsn)
    try:
        s = await seed.seed_demo(pool)
    finally:
        await pool.close()
    tags = ", ".join(f"{name} ({n} contacts)" for name, n in s.tags.items())
    emit(
        args,
        {"user_id": s.user_id, "workspace_id": s.workspace_id, "tags": s.tags},
        f"workspace {s.workspace_id}, owner user {s.user_id}, tags {tags}",
    )


async def welcome(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.events import (
        EventError,
        JobDisabled,
        UserSignedUp,
        check_enabled,
        dispatch,
        parse_event,
        route_of,
    )
    from starter.common import connect

    # The same path as `dispatch user/signed.up`: flag check, id rules, summary in the UI.
    try:
        event = parse_event(UserSignedUp.NAME, {"userId": args.user_id})
        check_enabled(settings, route_of(event))
    except (EventError, JobDisabled) as e:
        fail(str(e))
    client = await connect(settings)
    d = await dispatch(client, settings, event)
    wid = d.workflow_id
    data: dict[str, object] = {
        "workflow_id": wid,
        "run_id": d.run_id,
        "started": d.started,
        "ui": ui_link(settings, wid),
    }
    if args.wait:
        # A provider that is down or busy delays the email (reported while it waits); one
        # given up when its window closed fails the workflow: exit 1 with the reason.
        data["result"] = await result_reporting_waits(client, wid)
    emit(args, data, f"{'started' if d.started else 'already sent'} {wid}\n  {data['ui']}")
