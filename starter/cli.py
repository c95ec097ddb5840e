"""`python -m starter COMMAND`: one CLI for the stack and the jobs."""

from __future__ import annotations

import argparse
import asyncio
import logging

from folksjobs.settings import get_settings
from starter import basic, demo, dev, imports, schedule

COMMANDS = [dev, demo, basic, imports, schedule]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m starter", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        asyncio.run(args.run(args, get_settings()))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
