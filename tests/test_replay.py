"""Recorded histories replay against today's workflow code: a change that would break a
run in flight (a command added, removed or reordered without `workflow.patched`) fails
here, not in production.

The histories in tests/histories/ come from tests/test_workflow_paths.py (every path of
ProcessCsv and ProcessExport the mocks reach, including each run of a continue-as-new
chain), recorded with `FOLKSJOBS_RECORD_HISTORIES=1` before a change to the workflows.
Record new ones when a path is added; keep the old ones, they are the runs in flight.
process_csv_before_chunking_queue.json is a 5-row import in 2-row chunks recorded before
download-and-chunk had its own task queue: the run in flight keeps its queue
(workflow.patched).
The `before-i19-*` ones come from a real worker (an import across a continue-as-new, both
runs, its workspace gate, an export and a welcome email), recorded before issue 19 put
check-import before the gate.
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


def test_there_are_histories_of_both_workflows() -> None:
    names = {p.name.split(".")[0] for p in HISTORIES}
    assert {"process_csv", "process_export"} <= names


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[ProcessCsv, ProcessExport, SendWelcome, WeeklyDigest, SlotGate],
        data_converter=CONVERTER,
    )
    await replayer.replay_workflow(_history(path))
