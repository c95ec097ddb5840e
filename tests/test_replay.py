"""Histories recorded before a workflow change replay against today's code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.import_csv import ProcessCsv

HISTORIES = Path(__file__).parent / "histories"


@pytest.mark.parametrize(
    "name",
    # A 5-row import in 2-row chunks, recorded before download-and-chunk had its own
    # task queue: the run in flight must keep its queue (workflow.patched).
    ["process_csv_before_chunking_queue"],
)
async def test_recorded_history_replays(name: str) -> None:
    history = WorkflowHistory.from_json(f"import-{name}", (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(workflows=[ProcessCsv], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
