"""Commands: dev (the whole stack until Ctrl-C) and demo (the quick start's main job)."""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dev", help="start Temporal (+UI), PostgreSQL, Valkey and the worker")
    p.add_argument("--no-worker", action="store_true", help="start the servers only")
    p.set_defaults(run=dev)


async def dev(args: argparse.Namespace, settings: Settings) -> None:
    from starter.stack import describe, dev_stack

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with dev_stack(settings, run_worker=not args.no_worker) as (live, _client):
        print("folksjobs dev stack is up:")
        for name, value in describe(live):
            print(f"  {name:<14} {value}")
        print("Export these in another shell to use the starter against it:")
        print(f"  export DATABASE_URL={live.database_url} REDIS_URL={live.redis_url}")
        print("Ctrl-C stops everything; state is kept in", live.state_dir)
        await stop.wait()
        print("stopping ...")
