"""What every starter command shares: settings, the Temporal client, output, UI links."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from starter.errors import USAGE

if TYPE_CHECKING:
    from temporalio.client import Client

    from folksjobs.settings import Settings


async def connect(settings: Settings) -> Client:
    """Temporal for a command: a person hears within ~2 s that it is not running, where
    the worker and the dev stack wait patiently for a server that is still starting."""
    from folksjobs.infra import temporal

    return await temporal.connect(settings, attempts=4)


def ui_link(settings: Settings, workflow_id: str) -> str:
    # Imported when called: folksjobs.infra.ui loads the Temporal SDK, which --help skips.
    from folksjobs.infra.ui import run_link

    return run_link(settings, workflow_id)


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str))
    else:
        print(text)


def fail(message: str, code: int = USAGE) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def database_url(settings: Settings) -> str:
    """DATABASE_URL, or a one-line error naming the fix (the commands that need only
    PostgreSQL, not the whole set of services)."""
    if not settings.database_url:
        fail("DATABASE_URL is not set (start the dev stack with `python -m starter dev`)")
    return settings.database_url


async def result_reporting_waits(client: Client, workflow_id: str, every: float = 5.0) -> Any:
    """The workflow's result (following continue-as-new); meanwhile, every `every` seconds
    on stderr, the emails its activities are waiting to send: pending activities whose
    last attempt a provider refused for now (EmailSendFailed), with that answer."""
    import asyncio

    from folksjobs.errors import EMAIL_SEND_FAILED

    handle = client.get_workflow_handle(workflow_id)
    task = asyncio.ensure_future(handle.result())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            desc = await handle.describe()
            waiting = [
                p
                for p in desc.raw_description.pending_activities
                if p.last_failure.application_failure_info.type == EMAIL_SEND_FAILED
            ]
            if waiting:
                last = waiting[-1]
                print(
                    f"waiting: {len(waiting)} email activit{'y' if len(waiting) == 1 else 'ies'}"
                    f" (e.g. {last.activity_id}, attempt {last.attempt}:"
                    f" {last.last_failure.message[:200]})",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        task.cancel()
