"""Command: dispatch — send one event of the catalog (folksjobs.events), as other code would.

    python -m starter dispatch user/signed.up --data '{"userId": "..."}'
    python -m starter dispatch import/csv.confirmed --data @event.json --json

An unknown name, invalid data, a disabled job or (with DATABASE_URL set) ids that do not
belong together (a user outside the workspace, another workspace's import or export)
exit with code 2 and start nothing. For example:

    python -m starter dispatch workspace/deleted --data '{"workspaceId": "...", "userId": "..."}'
    python -m starter dispatch user/deleted --data '{"userId": "..."}'

"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from starter.common import add_json_flag, emit, fail, ui_link

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dispatch",
        help="start a job from an event of the catalog",
        description="events: see docs/contract.md; an unknown name lists them",
    )
    p.add_argument("name", metavar="NAME", help="event name, e.g. user/signed.up")
    p.add_argument("--data", required=True,
                   help="event data as camelCase JSON, or @FILE, or @- for stdin")  # fmt: skip
    p.add_argument("--task-queue", help="override TEMPORAL_TASK_QUEUE")
    p.add_argument("--wait", action="store_true", help="wait for the run's result")
    add_json_flag(p)
    p.set_defaults(run=dispatch_cmd)


def _read(data: str) -> str:
    if data == "@-":
        return sys.stdin.read()
    if data.startswith("@"):
        path = Path(data[1:])
        if not path.is_file():
            fail(f"--data {data}: no such file")
        return path.read_text()
    return data


async def dispatch_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.events import (
        EventError,
        JobDisabled,
        check_enabled,
        check_event,
        dispatch,
        parse_event,
        register_signup,
        route_of,
    )
    from folksjobs.infra import db
    from starter.common import connect

    # Everything that can be refused is checked before connecting: nothing starts.
    try:
        event = parse_event(args.name, _read(args.data))
    except EventError as e:
        fail(str(e))
    try:
        check_enabled(settings, route_of(event))
    except JobDisabled as e:
        fail(str(e))
    if settings.database_url:
        pool = await db.create_pool(settings.database_url, max_size=1)
        try:
            await check_event(pool, event)
            await register_signup(pool, event)
        except EventError as e:
            fail(str(e))
        finally:
            await pool.close()
    client = await connect(settings)
    try:
        d = await dispatch(client, settings, event, task_queue=args.task_queue)
    except JobDisabled as e:
        fail(str(e))
    data: dict[str, object] = {**dataclasses.asdict(d), "ui": ui_link(settings, d.workflow_id)}
    if args.wait:
        data["result"] = await client.get_workflow_handle(d.workflow_id, run_id=d.run_id).result()
    verb = "started" if d.started else "already dispatched (existing run)"
    emit(args, data, f"{verb}: {d.workflow} {d.workflow_id} on {d.task_queue}\n  {data['ui']}")
