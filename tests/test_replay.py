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
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.export_csv import ProcessExport
from workflows.import_csv import ProcessCsv

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_are_histories_of_both_workflows() -> None:
    names = {p.name.split(".")[0] for p in HISTORIES}
    assert {"process_csv", "process_export"} <= names


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    replayer = Replayer(
        workflows=[ProcessCsv, ProcessExport], data_converter=pydantic_data_converter
    )
    history = load(path)
    # raise_on_replay_failure (the default) turns a nondeterminism into this test's failure.
    await replayer.replay_workflow(history)
