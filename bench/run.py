"""The benchmark: folksjobs import/export against the spec's design and PostgreSQL itself.

    python3 run.py bench --sizes 100000,1000000,5000000      # from the repository root
    python bench/run.py --sizes 100000 --cases c,d           # a subset, in the venv

Starts its own embedded PostgreSQL, Valkey and Temporal dev server under --work, then for
every size and case loads the same generated file into an empty workspace (import) and
again into the same workspace (re-import: all updates). Cases:

  a  folksjobs defaults, end to end through Temporal (upload timed apart), Gravatar off
  b  folksjobs with the spec's numbers: 500-row chunks, 50-row sub-batches, 1 chunk at a time
  c  the ceiling: psql \\copy into an UNLOGGED staging table + one INSERT ... ON CONFLICT
  d  pgloader into the same staging table + the same merge

and, at --export-rows, the export: folksjobs end to end vs COPY (SELECT ...) TO STDOUT.
Then, once each, issue 20's cases on the same stack and task queue:

  burst      W workspaces x R rows confirmed at once vs one W x R import (bench/tenants.py)
  small      N small imports in a row vs a one-activity no-op workflow (bench/tenants.py)
  twoworker  two workers pinned to cores 0 and 1 vs one pinned to core 0 (bench/scale.py)
  digest     weekly digest over N workspaces seeded in bulk (bench/scale.py)
  big        one 10M-row import: runs, largest history, peak RSS (bench/scale.py)

and, only when named (`--cases gravatar`), issue 25's case (bench/avatars.py, which also
runs on its own with a one-partition Temporal; here the stack's default partitions):

  gravatar   the import with Gravatar at 120 ms vs off, and the avatars after it

Writes bench/results.json (raw), bench/results.md (tables, ratios, targets, machine) and
bench/results.png. `--report-only` re-renders the last two from the first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import avatars, ceiling, folks, profile, report, scale, tenants  # noqa: E402
from bench.generate import generate  # noqa: E402
from bench.sampler import CpuMeter, Sampler  # noqa: E402
from bench.stack import BenchStack, start_stack  # noqa: E402

CASES = ["c", "d", "a", "b"]
# Run once each after the sizes, in this order (big last: the longest, and its 10M
# contacts would slow the digest's per-workspace counts of nothing).
ISSUE20 = ["burst", "small", "twoworker", "digest", "big"]
TEMPORAL_CASES = {"a", "b", *ISSUE20}


@dataclass
class Result:
    case: str
    phase: str  # import | reimport | export
    rows: int
    file_bytes: int = 0
    wall_s: float | None = None
    rows_per_s: float | None = None
    peak_rss_mb: float | None = None
    client_cpu_s: float | None = None
    pg_cpu_s: float | None = None
    pg_active_s: float | None = None
    temporal_cpu_s: float | None = None
    contacts: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Bench:
    def __init__(self, args: argparse.Namespace, stack: BenchStack) -> None:
        self.args = args
        self.stack = stack
        self.psql = stack.psql
        self.pg_cpu = CpuMeter(stack.postmaster_pid)
        self.temporal_cpu = CpuMeter(stack.temporal_pid) if stack.temporal.proc else None
        self.results: list[Result] = []
        # Issue 20's cases: one dict of figures per case, as each case returns it.
        self.issue20: dict[str, Any] = {}
        self.meta = report.machine_meta(stack, args)
        self.rows = 0
        # One queue for every worker of the run, as in production: workflows that outlive
        # a phase (the per-workspace import gate) must find the next phase's worker.
        self.task_queue = f"bench-{uuid.uuid4().hex[:8]}"

    # --- bookkeeping -----------------------------------------------------------------
    def save(self) -> None:
        data = {
            "meta": self.meta,
            "results": [asdict(r) for r in self.results],
            "issue20": self.issue20,
        }
        self.args.out.mkdir(parents=True, exist_ok=True)
        (self.args.out / "results.json").write_text(json.dumps(data, indent=1) + "\n")

    def pg_active(self) -> float:
        ms = self.psql.scalar(
            "SELECT coalesce(active_time, 0) FROM pg_stat_database WHERE datname = 'folksjobs'"
        )
        return float(ms or 0) / 1000

    def new_workspace(self) -> tuple[str, str]:
        """An empty contacts table and a fresh workspace with its owner."""
        uid, wid = str(uuid.uuid4()), str(uuid.uuid4())
        self.psql.run(
            "TRUNCATE contacts, contact_tags CASCADE;"
            f" INSERT INTO users (id, email, name) VALUES ('{uid}', 'bench@example.com', 'Bench');"
            f" INSERT INTO workspaces (id, name, owner_user_id) VALUES ('{wid}', 'bench', '{uid}');"
            f" INSERT INTO workspace_settings (workspace_id) VALUES ('{wid}');"
            " CHECKPOINT;"
        )
        return uid, wid

    def contacts(self, wid: str) -> int:
        return int(self.psql.scalar(f"SELECT count(*) FROM contacts WHERE workspace_id = '{wid}'"))

    def measure(self, res: Result, fn: Any, wid: str | None = None) -> Result:
        label = f"{res.case} {res.phase} {res.rows:,}"
        print(f"[bench] {label} ...", flush=True)
        pg0, act0 = self.pg_cpu.read(), self.pg_active()
        tc0 = self.temporal_cpu.read() if self.temporal_cpu else 0.0
        try:
            with Sampler() as sampler:
                out = fn(sampler)
            sampler.sample()
        except Exception as e:
            traceback.print_exc()
            res.note = f"failed: {type(e).__name__}: {str(e)[:300]}"
            self.results.append(res)
            self.save()
            return res
        res.wall_s = float(out.pop("wall_s"))
        # Exports count the contacts written, not the rows of the file that filled them.
        done = int(out.get("rows_done", res.rows))
        res.rows_per_s = done / res.wall_s if res.wall_s else None
        res.peak_rss_mb = sampler.peak_rss / 2**20
        out["rss_own_mb"] = round(sampler.peak_own_rss / 2**20)
        out["rss_children_mb"] = round(sampler.peak_children_rss / 2**20)
        res.client_cpu_s = sampler.cpu_seconds
        res.pg_cpu_s = self.pg_cpu.read() - pg0
        res.pg_active_s = self.pg_active() - act0
        if self.temporal_cpu:
            res.temporal_cpu_s = self.temporal_cpu.read() - tc0
        if wid:
            res.contacts = self.contacts(wid)
        res.note = str(out.pop("note", res.note))
        res.extra.update(out)
        print(
            f"[bench] {label}: {res.wall_s:.1f} s, {res.rows_per_s or 0:,.0f} rows/s,"
            f" peak RSS {res.peak_rss_mb:.0f} MB, {res.extra}",
            flush=True,
        )
        self.results.append(res)
        self.save()
        return res

    def skip(self, case: str, rows: int, size: int, why: str) -> None:
        print(f"[bench] {case} {rows:,}: skipped: {why}", flush=True)
        for phase in self.phases:
            self.results.append(Result(case, phase, rows, size, note=f"skipped: {why}"))
        self.save()

    @property
    def phases(self) -> list[str]:
        return ["import"] if self.args.no_reimport else ["import", "reimport"]

    # --- cases -----------------------------------------------------------------------
    def run_size(self, rows: int) -> None:
        self.rows = rows  # the size being run, for file names
        csv = self.args.work / "files" / f"contacts-{rows}-s{self.args.seed}.csv"
        gen = generate(rows, self.args.seed, csv)
        size = gen.bytes
        self.meta.setdefault("files", {})[str(rows)] = asdict(gen)
        print(f"[bench] generated {csv} ({size / 2**20:.1f} MiB in {gen.seconds:.1f} s)")
        for case in [c for c in CASES if c in self.args.cases]:
            why = self.unavailable(case, rows)
            if why:
                self.skip(case, rows, size, why)
                continue
            uid, wid = self.new_workspace()
            for phase in self.phases:
                self.measure(Result(case, phase, rows, size), self.loader(case, csv, wid, uid), wid)
            if case == "c" and rows == self.args.export_rows:
                self.run_export(rows, wid, uid)
        if not self.args.keep_files:
            csv.unlink(missing_ok=True)

    def unavailable(self, case: str, rows: int) -> str | None:
        if case == "d":
            if self.args.d_max_rows and rows > self.args.d_max_rows:
                return f"above --d-max-rows {self.args.d_max_rows:,}"
            return ceiling.pgloader_available()
        if case in ("a", "b"):
            why = folks.import_available()
            if why:
                return why
        if case == "b":
            return self.b_too_slow(rows)
        return None

    def b_too_slow(self, rows: int) -> str | None:
        """Case b is skipped where its projected time for all its phases (from its rate at
        the largest size measured so far) exceeds --b-max-minutes, or above --b-max-rows."""
        if self.args.b_max_rows and rows > self.args.b_max_rows:
            return f"above --b-max-rows {self.args.b_max_rows:,}"
        done = [r for r in self.results if r.case == "b" and r.phase == "import" and r.rows_per_s]
        if not done:
            return None
        last = max(done, key=lambda r: r.rows)
        assert last.rows_per_s
        minutes = rows / last.rows_per_s / 60 * len(self.phases)
        if minutes > self.args.b_max_minutes:
            return (
                f"projected {minutes:.0f} min for its {' + '.join(self.phases)} at"
                f" {last.rows_per_s:,.0f} rows/s (its rate at {last.rows:,} rows),"
                f" over the {self.args.b_max_minutes:.0f}-min cap"
            )
        return None

    def loader(self, case: str, csv: Path, wid: str, uid: str) -> Any:
        work = self.args.work / "runs" / f"{case}-{uuid.uuid4().hex[:6]}"
        if case == "c":
            return lambda s: ceiling.copy_and_merge(self.psql, csv, wid, s)
        if case == "d":
            pg_url = self.stack.dsn
            return lambda s: ceiling.pgloader_and_merge(self.psql, pg_url, csv, wid, work, s)
        overrides = dict(folks.PRESETS[case])
        if csv.stat().st_size > 200 * 2**20:
            overrides["UPLOAD_MAX_BYTES"] = str(csv.stat().st_size + 2**20)
        fenv = folks.FolksEnv(self.stack, self.args.work / "folks", overrides, self.task_queue)

        def run(sampler: Sampler) -> dict[str, Any]:
            phase = "reimport" if self.contacts(wid) else "import"
            prof = None
            if self.args.profile:
                prof = self.args.work / "profiles" / f"{case}-{self.rows}-{phase}.txt"
            with folks.Worker(fenv, work / "worker.log", prof) as worker:
                sampler.watch(worker.pid)
                out = folks.run_import(fenv, csv, wid, uid, sampler)
            if prof is not None and prof.exists():
                summary = profile.summarise(prof)
                prof.with_suffix(".md").write_text(summary + "\n")
                print(summary, flush=True)
                out["profile"] = str(prof.with_suffix(".md"))
            return out

        return run

    def run_export(self, rows: int, wid: str, uid: str) -> None:
        out = self.args.work / "export-copy.csv"
        n = self.contacts(wid)
        self.measure(
            Result("c", "export", rows),
            lambda s: {**ceiling.copy_export(self.psql, wid, out, s), "rows_done": n},
        )
        out.unlink(missing_ok=True)
        if "a" not in self.args.cases:
            return
        why = folks.export_available()
        if why:
            self.results.append(Result("a", "export", rows, note=f"skipped: {why}"))
            self.save()
            return
        fenv = folks.FolksEnv(self.stack, self.args.work / "folks", {}, self.task_queue)

        prof = self.args.work / "profiles" / f"a-{rows}-export.txt" if self.args.profile else None

        def run(sampler: Sampler) -> dict[str, Any]:
            log = self.args.work / "runs" / "export-worker.log"
            with folks.Worker(fenv, log, prof) as worker:
                sampler.watch(worker.pid)
                out = {**folks.run_export(fenv, wid, uid, sampler), "rows_done": n}
            if prof is not None and prof.exists():
                prof.with_suffix(".md").write_text(profile.summarise(prof) + "\n")
                out["profile"] = str(prof.with_suffix(".md"))
            return out

        self.measure(Result("a", "export", rows), run)

    # --- issue 20 ----------------------------------------------------------------------
    def run_issue20(self, case: str) -> None:
        a = self.args
        work = a.work / "issue20"
        print(f"[bench] {case} ...", flush=True)
        t0 = time.monotonic()
        try:
            if case in ("burst", "small"):
                # bench/tenants.py's own cases, on this stack and queue.
                targs = argparse.Namespace(
                    workspaces=a.burst_workspaces, rows=a.burst_rows, imports=a.small_imports,
                    small_rows=a.small_rows, seed=a.seed, env={}, work=work / case,
                )  # fmt: skip
                run = tenants.burst if case == "burst" else tenants.small
                out = run(self.stack, targs, self.task_queue)
            elif case == "twoworker":
                out = scale.twoworker(self.stack, work, self.task_queue, a.twoworker_rows, a.seed)
            elif case == "big":
                out = scale.big(
                    self.stack, work, self.task_queue, a.big_rows, a.seed, a.big_chunks_per_run
                )
            else:
                out = scale.digest(self.stack, work, self.task_queue, a.digest_workspaces)
        except Exception as e:
            traceback.print_exc()
            out = {"note": f"failed: {type(e).__name__}: {str(e)[:300]}"}
        out["case_s"] = round(time.monotonic() - t0, 1)
        self.issue20[case] = out
        self.save()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000,5000000", help="rows per file, comma list")
    p.add_argument(
        "--cases",
        default=",".join(["a", "b", "c", "d", *ISSUE20]),
        help="subset of a,b,c,d (per size) and " + ",".join(ISSUE20) + " (once)",
    )
    p.add_argument("--burst-workspaces", type=int, default=40, help="burst: W workspaces")
    p.add_argument("--burst-rows", type=int, default=25_000, help="burst: R rows each")
    p.add_argument("--small-imports", type=int, default=20, help="small: imports in a row")
    p.add_argument("--small-rows", type=int, default=1_000, help="small: rows per import")
    p.add_argument("--twoworker-rows", type=int, default=1_000_000, help="twoworker: rows")
    p.add_argument("--big-rows", type=int, default=10_000_000, help="big: rows")
    p.add_argument(
        "--big-chunks-per-run",
        type=int,
        default=0,
        help="big: IMPORT_CHUNKS_PER_RUN (0: the setting's default)",
    )
    p.add_argument(
        "--digest-workspaces", type=int, default=100_000, help="digest: workspaces seeded"
    )
    avatars.add_args(p, prefix="gravatar-")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--export-rows", type=int, default=1_000_000, help="size whose export is run")
    p.add_argument("--b-max-rows", type=int, default=0, help="never run case b above this size")
    p.add_argument("--d-max-rows", type=int, default=0,
                   help="never run case d (pgloader) above this size (0: no cap)")  # fmt: skip
    p.add_argument("--b-max-minutes", type=float, default=20.0,
                   help="skip b when its projected minutes (all phases) exceed this")  # fmt: skip
    p.add_argument("--no-reimport", action="store_true")
    p.add_argument("--profile", action="store_true",
                   help="attach py-spy to the worker (a, b); stacks in WORK/profiles")  # fmt: skip
    p.add_argument("--keep-files", action="store_true", help="keep the generated CSVs")
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench")
    p.add_argument("--out", type=Path, default=ROOT / "bench")
    p.add_argument("--report-only", action="store_true", help="re-render md/png from json")
    args = p.parse_args(argv)
    try:
        args.sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be a comma list of integers (got {args.sizes!r})")
    if not args.sizes or min(args.sizes) < 1:
        p.error("--sizes needs at least one positive size")
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in args.cases if c not in [*CASES, *ISSUE20, "gravatar"]]
    if bad:
        p.error(f"unknown case(s) {bad}: choose from {', '.join([*CASES, *ISSUE20, 'gravatar'])}")
    sizes = (args.burst_workspaces, args.burst_rows, args.small_imports, args.small_rows,
             args.twoworker_rows, args.big_rows, args.digest_workspaces)  # fmt: skip
    if min(sizes) < 1 or args.big_chunks_per_run < 0:
        p.error("the issue-20 sizes must be positive (--big-chunks-per-run >= 0)")
    args.argv = sys.argv[1:] if argv is None else argv
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.report_only:
        report.render(args.out)
        return
    t0 = time.monotonic()
    need_temporal = any(c in TEMPORAL_CASES | {"gravatar"} for c in args.cases)
    stack = start_stack(args.work / "state", temporal=need_temporal)
    try:
        bench = Bench(args, stack)
        if any(c in CASES for c in args.cases):
            for rows in sorted(args.sizes):
                bench.run_size(rows)
        for case in [c for c in ISSUE20 if c in args.cases]:
            bench.run_issue20(case)
        if "gravatar" in args.cases:
            g = avatars.gravatar(
                stack, args.work / "gravatar", bench.task_queue, avatars.from_prefixed(args)
            )
            (args.out / "gravatar.json").write_text(json.dumps(g, indent=1) + "\n")
        bench.meta["total_s"] = time.monotonic() - t0
        bench.save()
    finally:
        stack.stop()
    report.render(args.out)
    print(f"[bench] wrote {args.out / 'results.md'} and results.png/json")


if __name__ == "__main__":
    main()
