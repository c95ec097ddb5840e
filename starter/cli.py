"""`python -m starter COMMAND`: one CLI for the stack and the jobs."""

from __future__ import annotations

import argparse
import asyncio

from folksjobs.infra import logsafe
from folksjobs.infra.logs import setup_logging
from folksjobs.settings import get_settings
from starter import (
    api,
    basic,
    codec_server,
    contract,
    demo,
    dev,
    dispatch,
    exports,
    imports,
    schedule,
)

COMMANDS = [
    dev, demo, basic, imports, exports, schedule, dispatch, api, contract, codec_server
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m starter", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    settings = get_settings()
    # Same formats as the worker (LOG_FORMAT), emails masked; on stderr, so --json stays clean.
    setup_logging("INFO" if args.verbose else "WARNING", settings.log_format)
    # After setup_logging, which replaces the handlers: secrets and URL passwords too.
    logsafe.install(settings=settings)
    try:
        asyncio.run(args.run(args, settings))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
