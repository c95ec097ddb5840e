"""A short fault run (20k rows) for CI: `pytest -m faults` (or FOLKSJOBS_FAULTS=1).

Minutes, not seconds (every SIGKILL of a worker mid-chunk waits out the 15 s heartbeat
timeout), so the everyday suite skips it. The full run is `python -m tests.faults.run`;
its latest output is tests/faults/results.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from tests.faults.run import main_async

pytestmark = pytest.mark.faults


async def test_short_fault_run(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if "faults" not in (request.config.getoption("markexpr") or "") and not os.environ.get(
        "FOLKSJOBS_FAULTS"
    ):
        pytest.skip("slow: run with `pytest -m faults` or FOLKSJOBS_FAULTS=1")
    args = argparse.Namespace(
        rows=20_000, kills=3, seed=9, chunk_rows=1000, sub_batch_rows=250, parallel_chunks=4,
        chunks_per_run=8, timeout=900, only=["sigkill", "redis", "postgres-crash", "temporal"],
        out=tmp_path, keep=False, devstack_crashes=0,
    )  # fmt: skip
    code = await main_async(args)
    report = (tmp_path / "results.md").read_text()
    assert code == 0, report
    cases = json.loads((tmp_path / "results.json").read_text())["cases"]
    assert [c["case"] for c in cases] == ["clean", "sigkill", "redis", "postgres-crash", "temporal"]
    assert all(c["ok"] for c in cases), report
