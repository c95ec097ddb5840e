"""Command: contract — write (or --check) docs/contract.md and docs/schemas/*.json."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from starter.common import add_json_flag, emit, fail

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("contract", help="generate the gRPC contract (docs/contract.md, schemas)")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when the committed files are stale; write nothing")  # fmt: skip
    add_json_flag(p)
    p.set_defaults(run=contract_cmd)


def generate() -> dict[str, str]:
    from folksjobs.devtools import contract
    from worker import all_workflows

    return contract.render(contract.workflow_names(all_workflows()))


async def contract_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from folksjobs.devtools import contract
    from folksjobs.settings import ROOT

    files = generate()
    if args.check:
        stale = contract.stale(ROOT, files)
        if stale:
            fail(f"stale: {', '.join(stale)} (run `python -m starter contract`)", code=1)
        emit(args, {"stale": []}, "contract is up to date")
        return
    changed = contract.write(ROOT, files)
    emit(args, {"written": sorted(files), "changed": changed},
         f"wrote {len(files)} files; changed: {', '.join(changed) or 'none'}")  # fmt: skip
