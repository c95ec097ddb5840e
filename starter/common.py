"""What every starter command shares: settings, the Temporal client, output, UI links."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from folksjobs.infra.ui import run_link as ui_link

__all__ = ["add_json_flag", "emit", "fail", "ui_link"]


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")


def emit(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(data, default=str))
    else:
        print(text)


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
