"""Commands: dev (the whole stack until Ctrl-C) and demo (the quick start's main job)."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="start Temporal (+UI), PostgreSQL, Valkey and the worker")
    p.add_argument("--no-worker", action="store_true", help="start the servers only")
    p.set_defaults(run=dev)


async def dev(args: argparse.Namespace, settings: Settings) -> None:
    from starter.stack import describe, dev_stack, on_signals

    stop = asyncio.Event()
    on_signals(stop.set)
    async with dev_stack(settings, run_worker=not args.no_worker, say=say) as (live, _client):
        print("folksjobs dev stack is up:")
        for name, value in describe(live):
            print(f"  {name:<14} {value}")
        print("Export these in another shell to use the starter against it:")
        print(f"  export DATABASE_URL={live.database_url} REDIS_URL={live.redis_url}")
        print("Ctrl-C stops everything; state is kept in", live.state_dir, flush=True)
        await stop.wait()
        print(stopping_line(live), flush=True)


def say(line: str) -> None:
    print(line, flush=True)


def stopping_line(settings: Settings) -> str:
    return (
        f"stopping: the worker finishes what it runs (up to "
        f"{settings.worker_graceful_shutdown_seconds} s), then the API and the servers"
    )
