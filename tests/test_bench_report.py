"""bench/report.py renders issue 20's cases and targets, whole or failed, so a long
benchmark run never ends in a report that raises (results.json is kept either way)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench import report

# Figures of a smoke run (bench/README.md's smoke command), trimmed.
SMOKE: dict[str, Any] = {
    "burst": {
        "workspaces": 4,
        "rows_each": 2000,
        "single": {
            "wall_s": 1.2913340420000168,
            "rows_per_s": 6195.143734931365,
            "inexact": None,
            "peak_rss_mb": 133,
            "worker_cpu_s": 1.8,
        },
        "burst": {
            "wall_s": 4.708343813999818,
            "rows_per_s": 1699.1112620562567,
            "median_s": 4.429842191499802,
            "slowest_s": 4.706364209000185,
            "slowest_over_median": 1.0624225436362016,
            "inexact": None,
            "peak_rss_mb": 204,
            "worker_cpu_s": 2.5,
        },
        "burst_over_single": 0.274265026729857,
        "case_s": 10.0,
    },
    "small": {
        "small": {
            "imports": 5,
            "rows": 1000,
            "median_end_to_end_ms": 1481,
            "median_confirm_to_result_ms": 1445,
            "median_floor_ms": 186,
            "end_to_end_over_floor": 7.97698447750825,
            "inexact": None,
            "history_ms": {"process-batch: ran": 418.4, "total (first to last event)": 1049.6},
            "events": 60,
            "peak_rss_mb": 133,
            "worker_cpu_s": 2.4,
        },
        "case_s": 10.7,
    },
    "twoworker": {
        "rows": 100000,
        "distinct_valid": 97020,
        "generator": 97020,
        "one": {
            "wall_s": 11.899674310000137,
            "upload_s": 0.9035907590000534,
            "rows_per_s": 8403.591341652345,
            "counts": {"inserted": 97020, "updated": 0, "failed": 1010, "duplicates": 1970},
            "contacts": 97020,
            "inexact": None,
            "runs": 1,
            "max_events": 108,
            "max_history_bytes": 20589,
            "within_limits": True,
            "per_worker": {
                "core 0": {
                    "check-import": 1,
                    "request-slot": 1,
                    "fetch-import": 1,
                    "process-batch": 10,
                    "download-and-chunk": 1,
                    "finalize": 1,
                }
            },
            "peak_rss_mb": 180,
            "worker_cpu_s": 4.1,
            "pg_cpu_s": 3.0,
            "temporal_cpu_s": 1.1,
        },
        "two": {
            "wall_s": 7.440040721000059,
            "upload_s": 0.40116424200004985,
            "rows_per_s": 13440.786650231992,
            "counts": {"inserted": 97020, "updated": 0, "failed": 1010, "duplicates": 1970},
            "contacts": 97020,
            "inexact": None,
            "runs": 1,
            "max_events": 111,
            "max_history_bytes": 20865,
            "within_limits": True,
            "per_worker": {
                "core 0": {
                    "check-import": 1,
                    "request-slot": 1,
                    "fetch-import": 1,
                    "process-batch": 9,
                    "finalize": 1,
                },
                "core 1": {"download-and-chunk": 1, "process-batch": 1},
            },
            "peak_rss_mb": 280,
            "worker_cpu_s": 5.4,
            "pg_cpu_s": 2.9,
            "temporal_cpu_s": 1.4,
        },
        "speedup": 1.5994098360795843,
        "identical": True,
        "both_took_chunks": True,
        "exact": True,
        "case_s": 36.2,
    },
    "digest": {
        "workspaces": 2014,
        "seeded": {"new": 799, "disabled": 199, "empty": 601, "old": 401},
        "seed_s": 1.1,
        "wall_s": 80.94152881599985,
        "workspaces_per_s": 24.882159127217886,
        "summary": {
            "sent": 812,
            "skipped_disabled": 199,
            "skipped_no_activity": 1003,
            "failed": 0,
            "already_sent": 0,
        },
        "result_runs": 5,
        "with_activity": 812,
        "sent_ledger": 812,
        "outbox_files": 812,
        "exact": True,
        "runs": 5,
        "max_events": 1778,
        "max_history_bytes": 442295,
        "within_limits": True,
        "pg_cpu_s": 7.9,
        "temporal_cpu_s": 25.6,
        "peak_rss_mb": 150,
        "worker_cpu_s": 24.3,
        "case_s": 87.0,
    },
    "big": {
        "wall_s": 13.69107531399959,
        "upload_s": 0.7477318249998461,
        "rows_per_s": 21912.0845601689,
        "counts": {"inserted": 290913, "updated": 0, "failed": 3052, "duplicates": 6035},
        "contacts": 290913,
        "inexact": None,
        "runs": 3,
        "max_events": 96,
        "max_history_bytes": 17293,
        "within_limits": True,
        "rows": 300000,
        "file_mib": 20,
        "chunks_per_run": 10,
        "peak_rss_mb": 181,
        "rss_own_mb": 149,
        "worker_cpu_s": 4.3,
        "exact": True,
        "pg_cpu_s": 7.2,
        "temporal_cpu_s": 1.6,
        "case_s": 17.8,
    },
}


def data(issue20: dict[str, Any]) -> dict[str, Any]:
    return {"meta": {"date": "2026-12-02", "command": "smoke"}, "results": [], "issue20": issue20}


def test_every_case_renders_with_its_target() -> None:
    md = report.render_md(data(SMOKE), "")
    targets = {t: s for t, _, s in report.targets20(data(SMOKE))}
    assert targets["burst slowest/median <= 1.1 (4 x 2,000)"] == "met"
    assert targets["burst/single rows/s >= 0.9 (4 x 2,000)"] == "MISSED"
    assert targets["1M import: a/c >= 0.9"] == "not measured"
    for case in ("burst", "small", "twoworker", "big", "digest"):
        assert f"### {case}:" in md
    assert "core 1: download-and-chunk 1, process-batch 1" in md


def test_a_failed_or_missing_case_renders_as_not_measured() -> None:
    broken = copy.deepcopy(SMOKE)
    broken["big"] = {"note": "failed: RuntimeError: import ended failed", "case_s": 3.0}
    del broken["digest"]
    md = report.render_md(data(broken), "")
    rows = {t.split(" (")[0]: (m, s) for t, m, s in report.targets20(data(broken))}
    assert rows["big"] == ("failed: RuntimeError: import ended failed", "not measured")
    assert rows["digest"][1] == "not measured"
    assert "- big: failed: RuntimeError" in md


def test_a_history_over_temporals_limits_is_missed() -> None:
    over = copy.deepcopy(SMOKE)
    over["digest"].update(max_events=60_000, within_limits=False)
    rows = {t.split(" (")[0]: s for t, _, s in report.targets20(data(over))}
    assert rows["digest"] == "MISSED"


def test_the_plot_renders(tmp_path: Path) -> None:
    # matplotlib is the bench extra's, not in the CI lock.
    pytest.importorskip("matplotlib")
    report.render_png(data(SMOKE), tmp_path / "results.png")
    assert (tmp_path / "results.png").stat().st_size > 10_000
