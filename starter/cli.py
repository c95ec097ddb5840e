"""`folksjobs COMMAND` (or `python -m starter COMMAND`): one CLI for the stack and the jobs."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import traceback
from typing import NoReturn

# Only argparse is imported before a command runs: each command module imports its
# clients (Temporal, asyncpg, anthropic, aioboto3, ...) inside the function that needs
# them, so `--help` answers at once (tests/test_cli.py, bench/cli_times.py).
from folksjobs import __version__
from starter import (
    api,
    basic,
    codec_server,
    contract,
    demo,
    dev,
    dispatch,
    errors,
    exports,
    imports,
    schedule,
)

COMMANDS = [
    dev, demo, basic, imports, exports, schedule, dispatch, api, contract, codec_server
]  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="folksjobs", description=__doc__,
                                epilog=errors.EPILOG)  # fmt: skip
    p.add_argument("--version", action="version", version=f"folksjobs {__version__}")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="log at INFO level and print tracebacks")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        from folksjobs.infra import logsafe
        from folksjobs.infra.logs import setup_logging
        from folksjobs.settings import get_settings

        settings = get_settings()
        # Same formats as the worker (LOG_FORMAT), emails masked; on stderr, so --json
        # stays clean.
        setup_logging("INFO" if args.verbose else "WARNING", settings.log_format)
        # After setup_logging, which replaces the handlers: secrets and URL passwords too.
        logsafe.install(settings=settings)
        asyncio.run(args.run(args, settings))
    except KeyboardInterrupt:
        raise SystemExit(errors.INTERRUPTED) from None
    except SystemExit:
        raise
    except Exception as e:
        if args.verbose:
            traceback.print_exc()
        from folksjobs.infra.logsafe import redact

        code, line = errors.explain(e)
        print(f"error: {redact(line)}", file=sys.stderr)
        raise SystemExit(code) from None


def run(argv: list[str] | None = None) -> NoReturn:
    """The `folksjobs` console script and `python -m starter`: main(), then a hard exit."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can crash CPython's finalization (segfault/abort in
    # about 1 exit of 15: temporalio/sdk-python#300); every command has finished and flushed
    # its output by now, so the process ends without finalizing.
    os._exit(code)
