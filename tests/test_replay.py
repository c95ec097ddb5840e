"""Histories recorded before a workflow change replay against today's code.

Every file in `tests/histories/`: `process_csv_before_chunking_queue` (a 5-row import in
2-row chunks, recorded before download-and-chunk had its own task queue) and
`before-i19-*` (an import across a continue-as-new, both runs, its workspace gate, an
export and a welcome email, recorded before issue 19's check-import before the gate, the
gate's confirmation order and the export's membership check). A change that would break a
run in flight fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from folksjobs.infra.temporal import CONVERTER
from workflows.export_csv import ProcessExport
from workflows.gate import SlotGate
from workflows.import_csv import ProcessCsv
from workflows.send_welcome import SendWelcome
from workflows.weekly_digest import WeeklyDigest

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[ProcessCsv, ProcessExport, SendWelcome, WeeklyDigest, SlotGate],
        data_converter=CONVERTER,
    )
    await replayer.replay_workflow(_history(path))
