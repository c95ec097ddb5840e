"""Many tenants at once and small imports (issue 20): the cases "burst" and "small".

    python bench/tenants.py burst --workspaces 40 --rows 25000    # in the venv
    python bench/tenants.py small --imports 20 --rows 1000
    python bench/tenants.py burst small --workspaces 4 --rows 2000 --imports 5   # a smoke run

burst: W workspaces x R rows, each its own file, all confirmed at once, against one import
       of the same W x R rows into one workspace in the same run: rows/s of each, the
       slowest/median completion of the burst, the worker's peak RSS, and every import
       exact (its counts add up to its rows; inserted = the file's distinct valid emails =
       the contacts its workspace holds).
small: N imports of R rows one after another, median end to end (upload to result and
       confirm to result), against a workflow of one no-op activity in the same run (the
       floor: Temporal's own round trips), and where one small import's time goes, from
       its history's event timestamps.

It starts its own stack under --work (as bench/run.py does) and one worker process per
phase (`python worker.py`, sampled for RSS); the no-op workflow runs on a worker inside
this process, on its own task queue. Figures go to WORK/tenants.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from temporalio import activity, workflow  # noqa: E402
from temporalio.client import Client, WorkflowHistory  # noqa: E402
from temporalio.worker import UnsandboxedWorkflowRunner  # noqa: E402
from temporalio.worker import Worker as TemporalWorker  # noqa: E402

from bench import folks  # noqa: E402
from bench.generate import HEADER, generate  # noqa: E402
from bench.sampler import Sampler  # noqa: E402
from bench.stack import BenchStack, start_stack  # noqa: E402

# --- the floor: one no-op activity ----------------------------------------------------


@activity.defn(name="bench-noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchNoop")
class Noop:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=30))


# --- files and workspaces ---------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    path: Path
    rows: int
    distinct_valid: int


def distinct_valid(path: Path) -> int:
    """The file's distinct valid emails, by the import's own normalisation and check, with
    the bench workers' setting (no EMAIL_TEST_DOMAINS: a file of the old generator's `.test`
    addresses, left in a work directory, then counts as the worker does)."""
    from folksjobs.imports.addresses import email_of

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        return len({e for row in reader if (e := email_of(row, [0])) is not None})


def split(big: Path, parts: int, rows: int, out: Path) -> list[Part]:
    """`big` (parts x rows data rows) as `parts` files of `rows` rows, each with the header.
    Rows are whole CSV records (quoted cells may hold commas, never newlines here)."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[Part] = []
    with open(big, encoding="utf-8", newline="") as f:
        assert f.readline() == HEADER
        for p in range(parts):
            path = out / f"part-{p:03d}.csv"
            with open(path, "w", encoding="utf-8", newline="") as w:
                w.write(HEADER)
                for _ in range(rows):
                    w.write(f.readline())
            files.append(Part(path, rows, distinct_valid(path)))
    return files


class Tenants:
    """The bench's clients: owner pool (workspaces, counts), app pool, blob, Temporal."""

    def __init__(self, fenv: folks.FolksEnv) -> None:
        self.fenv = fenv
        self.settings = folks._settings(fenv)
        self.confirm_s: list[float] = []  # each confirm_import call, until the run starts

    async def __aenter__(self) -> Tenants:
        from folksjobs.infra import db
        from folksjobs.infra.blob import build_blob_store
        from folksjobs.infra.temporal import connect

        self.owner = await db.create_owner_pool(self.settings.database_url, max_size=4)
        self.pool = await db.create_pool(self.settings.database_url, max_size=8)
        self.blob = build_blob_store(self.settings)
        self.client: Client = await connect(self.settings)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.blob.close()
        await self.pool.close()
        await self.owner.close()

    async def workspace(self) -> tuple[str, str]:
        from folksjobs.devtools import seed

        uid = await seed.create_user(self.owner, f"bench-{uuid.uuid4().hex[:8]}@example.com")
        return uid, await seed.create_workspace(self.owner, uid, "bench")

    async def contacts(self, wid: str) -> int:
        n = await self.owner.fetchval(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid", wid
        )
        return int(n)

    async def upload(self, path: Path, wid: str, uid: str) -> str:
        from folksjobs.imports.uploads import upload_csv

        data = io.BytesIO(await asyncio.to_thread(path.read_bytes))
        up = await upload_csv(self.pool, self.blob, self.settings, data, path.name, wid, uid)
        return up.import_id

    async def run_import(self, wid: str, import_id: str) -> tuple[dict[str, Any], float, Any]:
        """Confirm, wait: the result, seconds from confirm to result, the handle."""
        from folksjobs.confirm import confirm_import
        from folksjobs.models import ImportResult

        t0 = time.perf_counter()
        handle = await confirm_import(self.client, self.pool, self.settings, wid, import_id)
        self.confirm_s.append(time.perf_counter() - t0)
        raw = await handle.result()
        seconds = time.perf_counter() - t0
        res = raw if isinstance(raw, ImportResult) else ImportResult.model_validate(raw)
        return res.model_dump(), seconds, handle

    async def exact(self, wid: str, res: dict[str, Any], part: Part) -> str | None:
        """Why the import is not exact, or None."""
        parts = sum(res[k] for k in ("inserted", "updated", "unchanged", "failed", "duplicates"))
        held = await self.contacts(wid)
        if res["status"] != "completed":
            return f"status {res['status']}"
        if not (res["total_rows"] == parts == part.rows):
            return f"counts {parts} / total {res['total_rows']} / rows {part.rows}"
        if not (res["inserted"] == part.distinct_valid == held):
            return f"inserted {res['inserted']}, distinct valid {part.distinct_valid}, held {held}"
        return None


# --- burst -------------------------------------------------------------------------------


async def _single(t: Tenants, part: Part) -> dict[str, Any]:
    uid, wid = await t.workspace()
    import_id = await t.upload(part.path, wid, uid)
    res, seconds, _ = await t.run_import(wid, import_id)
    return {
        "wall_s": seconds,
        "rows_per_s": part.rows / seconds,
        "inexact": await t.exact(wid, res, part),
    }


async def _burst(t: Tenants, parts: list[Part]) -> dict[str, Any]:
    tenants = [await t.workspace() for _ in parts]
    ids = [await t.upload(p.path, wid, uid) for p, (uid, wid) in zip(parts, tenants, strict=True)]
    t0 = time.perf_counter()
    done = await asyncio.gather(
        *(t.run_import(wid, i) for (_, wid), i in zip(tenants, ids, strict=True))
    )
    wall = time.perf_counter() - t0
    each = [seconds for _, seconds, _ in done]
    inexact = [
        f"workspace {n}: {why}"
        for n, ((_, wid), (res, _, _), p) in enumerate(zip(tenants, done, parts, strict=True))
        if (why := await t.exact(wid, res, p))
    ]
    rows = sum(p.rows for p in parts)
    slowest = max(done, key=lambda d: d[1])[2]
    return {
        "slowest_history_ms": breakdown(await slowest.fetch_history()),
        "wall_s": wall,
        "rows_per_s": rows / wall,
        "median_s": statistics.median(each),
        "slowest_s": max(each),
        "slowest_over_median": max(each) / statistics.median(each),
        "inexact": inexact or None,
    }


def burst(stack: BenchStack, args: argparse.Namespace, queue: str) -> dict[str, Any]:
    total = args.workspaces * args.rows
    big = args.work / "files" / f"burst-{total}.csv"
    generate(total, args.seed, big)
    single = Part(big, total, distinct_valid(big))
    parts = split(big, args.workspaces, args.rows, args.work / "files" / "burst-parts")
    out: dict[str, Any] = {"workspaces": args.workspaces, "rows_each": args.rows}
    for name, run in (
        ("single", lambda t: _single(t, single)),
        ("burst", lambda t: _burst(t, parts)),
    ):
        out[name] = _phase(stack, args, queue, name, run)
    out["burst_over_single"] = out["burst"]["rows_per_s"] / out["single"]["rows_per_s"]
    return out


def _phase(stack: BenchStack, args: argparse.Namespace, queue: str, name: str, run: Any) -> Any:
    """One phase on a fresh worker process, its peak RSS sampled."""
    fenv = folks.FolksEnv(stack, args.work / "folks", dict(args.env), queue)
    log = args.work / "runs" / f"{name}-worker.log"
    print(f"[tenants] {name} ...", flush=True)
    with Sampler() as sampler, folks.Worker(fenv, log) as worker:
        sampler.watch(worker.pid)

        async def go() -> dict[str, Any]:
            async with Tenants(fenv) as t:
                r: dict[str, Any] = await run(t)
                return r

        res = asyncio.run(go())
    res["peak_rss_mb"] = round(sampler.peak_rss / 2**20)
    # The worker's CPU (with its chunker processes): many small imports are bound by it.
    res["worker_cpu_s"] = round(sampler.cpu_seconds, 1)
    print(f"[tenants] {name}: {json.dumps(res, default=str)}", flush=True)
    return res


# --- small ----------------------------------------------------------------------------------


def breakdown(history: WorkflowHistory) -> dict[str, float]:
    """Where one run's time goes, in ms, from its history's event timestamps: each
    activity's wait for a slot (scheduled -> started) and its run (started -> completed),
    the workflow tasks' dispatch and run, the gate's grant and release round trips. Spans
    overlap (download-and-chunk runs beside process-batch): they do not add up to `total`."""
    spans: dict[str, float] = {}
    at: dict[str, Any] = {}
    names: dict[int, str] = {}
    events = list(history.events)

    def add(name: str, since: str, now: Any) -> None:
        if since in at:
            spans[name] = spans.get(name, 0.0) + (now - at[since]).total_seconds() * 1000

    for e in events:
        now = e.event_time.ToDatetime()
        kind = e.WhichOneof("attributes") or "?"
        attrs = getattr(e, kind, None)
        if kind == "activity_task_scheduled_event_attributes":
            names[e.event_id] = attrs.activity_type.name
            at[f"scheduled {e.event_id}"] = now
        elif kind == "activity_task_started_event_attributes":
            name = names[attrs.scheduled_event_id]
            add(f"{name}: waited for a slot", f"scheduled {attrs.scheduled_event_id}", now)
            at[f"started {attrs.scheduled_event_id}"] = now
        elif kind == "activity_task_completed_event_attributes":
            name = names[attrs.scheduled_event_id]
            add(f"{name}: ran", f"started {attrs.scheduled_event_id}", now)
            if name == "request-slot":
                at["slot requested"] = now
        elif kind == "workflow_task_scheduled_event_attributes":
            at["wft scheduled"] = now
        elif kind == "workflow_task_started_event_attributes":
            add("workflow tasks: dispatch", "wft scheduled", now)
            at["wft started"] = now
        elif kind == "workflow_task_completed_event_attributes":
            add("workflow tasks: run", "wft started", now)
        elif kind == "workflow_execution_signaled_event_attributes":
            add("gate: grant signal after request-slot", "slot requested", now)
        elif kind == "signal_external_workflow_execution_initiated_event_attributes":
            at["release sent"] = now
        elif kind == "external_workflow_execution_signaled_event_attributes":
            add("gate: release signal delivered", "release sent", now)
    first, last = events[0].event_time.ToDatetime(), events[-1].event_time.ToDatetime()
    spans["total (first to last event)"] = (last - first).total_seconds() * 1000
    return {k: round(v, 1) for k, v in spans.items()}


def timeline(history: WorkflowHistory) -> list[str]:
    """Each event as "ms since the first: kind (activity or marker name)", for reading
    where the time goes between the spans `breakdown` sums."""
    events = list(history.events)
    first = events[0].event_time.ToDatetime()
    names: dict[int, str] = {}
    out = []
    for e in events:
        kind = e.WhichOneof("attributes") or "?"
        attrs: Any = getattr(e, kind, None)
        what = kind.removesuffix("_event_attributes")
        if kind == "activity_task_scheduled_event_attributes":
            names[e.event_id] = attrs.activity_type.name
            what += f" {attrs.activity_type.name}"
        elif hasattr(attrs, "scheduled_event_id") and attrs.scheduled_event_id in names:
            what += f" {names[attrs.scheduled_event_id]}"
        elif kind == "marker_recorded_event_attributes":
            what += f" {attrs.marker_name}"
            if attrs.marker_name == "core_local_activity":
                # Local activities run inside the workflow task: their marker says when
                # each one completed, the only trace of where that task's time went.
                la = json.loads(attrs.details["data"].payloads[0].data)
                what += f" {la['activity_type']}"
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    t = la["complete_time"]  # a protobuf Timestamp, as core's JSON writes it
                    done = datetime.fromtimestamp(t["seconds"] + t["nanos"] / 1e9, UTC)
                    done = done.replace(tzinfo=None)
                    what += f" (completed at {(done - first).total_seconds() * 1000:.1f})"
        ms = (e.event_time.ToDatetime() - first).total_seconds() * 1000
        out.append(f"{ms:7.1f} {what}")
    return out


async def _small(t: Tenants, args: argparse.Namespace, part: Part) -> dict[str, Any]:
    # The floor first, on this process's worker and its own queue.
    floor_queue = f"noop-{uuid.uuid4().hex[:8]}"
    floor: list[float] = []
    # Unsandboxed: this module imports the bench's own tools, which the sandbox refuses.
    async with TemporalWorker(
        t.client,
        task_queue=floor_queue,
        workflows=[Noop],
        activities=[noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for _ in range(args.imports):
            t0 = time.perf_counter()
            await t.client.execute_workflow(
                Noop.run, id=f"noop-{uuid.uuid4()}", task_queue=floor_queue
            )
            floor.append(time.perf_counter() - t0)
    end_to_end: list[float] = []
    confirmed: list[float] = []
    inexact: list[str] = []
    history = None
    for n in range(args.imports):
        uid, wid = await t.workspace()
        t0 = time.perf_counter()
        import_id = await t.upload(part.path, wid, uid)
        res, seconds, handle = await t.run_import(wid, import_id)
        end_to_end.append(time.perf_counter() - t0)
        confirmed.append(seconds)
        if why := await t.exact(wid, res, part):
            inexact.append(f"import {n}: {why}")
        if n == args.imports // 2:
            history = await handle.fetch_history()
    assert history is not None
    median = statistics.median(end_to_end)
    return {
        "imports": args.imports,
        "rows": part.rows,
        "median_end_to_end_ms": round(median * 1000),
        "median_confirm_to_result_ms": round(statistics.median(confirmed) * 1000),
        # confirm_import itself (record update, event checks, start_workflow)
        "median_confirm_call_ms": round(statistics.median(t.confirm_s) * 1000),
        "median_floor_ms": round(statistics.median(floor) * 1000),
        "end_to_end_over_floor": median / statistics.median(floor),
        "inexact": inexact or None,
        "history_ms": breakdown(history),
        "events": len(history.events),
        "timeline": timeline(history),
    }


def small(stack: BenchStack, args: argparse.Namespace, queue: str) -> dict[str, Any]:
    path = args.work / "files" / f"small-{args.small_rows}.csv"
    generate(args.small_rows, args.seed, path)
    part = Part(path, args.small_rows, distinct_valid(path))
    return {"small": _phase(stack, args, queue, "small", lambda t: _small(t, args, part))}


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cases", nargs="+", choices=["burst", "small"])
    p.add_argument("--workspaces", type=int, default=40, help="burst: W")
    p.add_argument("--rows", type=int, default=25_000, help="burst: R rows per workspace")
    p.add_argument("--imports", type=int, default=20, help="small: imports in a row")
    p.add_argument("--small-rows", type=int, default=1_000, help="small: rows per import")
    p.add_argument("--seed", type=int, default=42)
    folks.add_env_option(p)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench-tenants")
    args = p.parse_args(argv)
    if min(args.workspaces, args.rows, args.imports, args.small_rows) < 1:
        p.error("--workspaces, --rows, --imports and --small-rows must be positive")
    args.env = folks.env_settings(p, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stack = start_stack(args.work / "state")
    # One queue for every phase: a workspace's import gate outlives the phase's worker.
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        if "burst" in args.cases:
            out["burst"] = burst(stack, args, queue)
        if "small" in args.cases:
            out.update(small(stack, args, queue))
    finally:
        stack.stop()
        args.work.mkdir(parents=True, exist_ok=True)
        (args.work / "tenants.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"[tenants] wrote {args.work / 'tenants.json'}")


if __name__ == "__main__":
    main()
