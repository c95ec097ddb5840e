"""Commands: migrate, seed, welcome."""

from __future__ import annotations

import argparse

from temporalio.common import WorkflowIDConflictPolicy

from folksjobs import db, seed
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput, welcome_workflow_id
from folksjobs.settings import Settings
from folksjobs.temporal import connect
from starter.common import add_json_flag, emit, fail, ui_link


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("migrate", help="apply the SQL migrations (idempotent)")
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


def _dsn(settings: Settings) -> str:
    if not settings.database_url:
        fail("DATABASE_URL is not set (start the dev stack with `python -m starter dev`)")
    assert settings.database_url
    return settings.database_url


async def migrate(args: argparse.Namespace, settings: Settings) -> None:
    applied = await db.migrate(_dsn(settings))
    emit(args, {"applied": applied}, f"applied: {', '.join(applied) or 'nothing (up to date)'}")


async def seed_cmd(args: argparse.Namespace, settings: Settings) -> None:
    dsn = _dsn(settings)
    await db.migrate(dsn)
    pool = await db.create_owner_pool(dsn)
    try:
        s = await seed.seed_demo(pool)
    finally:
        await pool.close()
    emit(
        args,
        {"user_id": s.user_id, "workspace_id": s.workspace_id},
        f"workspace {s.workspace_id}, owner user {s.user_id}",
    )


async def welcome(args: argparse.Namespace, settings: Settings) -> None:
    client = await connect(settings)
    wid = welcome_workflow_id(args.user_id)
    handle = await client.start_workflow(
        WF_SEND_WELCOME,
        SendWelcomeInput(user_id=args.user_id),
        id=wid,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    data: dict[str, object] = {
        "workflow_id": wid,
        "run_id": handle.result_run_id,
        "ui": ui_link(settings, wid),
    }
    if args.wait:
        data["result"] = await handle.result()
    emit(args, data, f"started {wid}\n  {data['ui']}")
