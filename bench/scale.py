"""Scale-out and big runs (issue 20): the cases "twoworker", "big" and "digest".

Run by bench/run.py (`--cases twoworker,big,digest`), which owns the stack, the task
queue and results.json; each case returns one dict of figures.

twoworker: the same R-row import (fresh workspace each) with one `python worker.py` pinned
           to core 0, then two pinned to cores 0 and 1 on the same task queue; the
           speedup, the activities each worker completed (from the histories of every run
           of the import: it continues as new), and the two results identical and exact.
big:       one R-row import (10M by default, the upload limit raised for it): the
           workflow runs, the largest run's history in events and bytes, the worker's
           peak RSS, exactness.
digest:    N workspaces seeded in bulk (COPY), some with contacts new this week, some with
           only old ones, some empty, some with the digest switched off, all with owners;
           one weekly-digest run for the current week; its runs, largest history, wall
           time, and the emails sent against the workspaces with activity.

Every run of both chains must stay within Temporal's limits (51,200 events, 50 MB per
history): the case records `within_limits` and the report marks a breach as missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench import folks
from bench.generate import Generated, generate
from bench.sampler import CpuMeter, Sampler
from bench.stack import BenchStack
from bench.tenants import distinct_valid

# Temporal's hard limits per workflow run (history_count_limit_error and
# history_size_limit_error of the server's dynamic config, their defaults).
MAX_EVENTS = 51_200
MAX_BYTES = 50 * 2**20


class Servers:
    """CPU seconds PostgreSQL and Temporal spent since this was made: where a case's time
    went besides the worker."""

    def __init__(self, stack: BenchStack) -> None:
        self.pg, self.tp = CpuMeter(stack.postmaster_pid), CpuMeter(stack.temporal_pid)
        self.pg0, self.tp0 = self.pg.read(), self.tp.read()

    def read(self) -> dict[str, float]:
        return {
            "pg_cpu_s": round(self.pg.read() - self.pg0, 1),
            "temporal_cpu_s": round(self.tp.read() - self.tp0, 1),
        }


# --- histories -------------------------------------------------------------------------


@dataclass
class RunFigures:
    run_id: str
    events: int
    bytes: int
    # (worker identity, activity type) -> activity completions in this run
    completions: Counter[tuple[str, str]]


async def chain(client: Client, workflow_id: str, *, activities: bool = True) -> list[RunFigures]:
    """Every run of a continue-as-new chain, oldest first, walked back from the latest
    through each run's `continued_execution_run_id`. Events and bytes are the server's own
    figures (the ones its limits apply to); completions are read from the history."""
    runs: list[RunFigures] = []
    run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    while run_id:
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
        info = (await handle.describe()).raw_description.workflow_execution_info
        done: Counter[tuple[str, str]] = Counter()
        previous = ""
        names: dict[int, str] = {}
        async for e in handle.fetch_history_events():
            if e.HasField("workflow_execution_started_event_attributes"):
                started = e.workflow_execution_started_event_attributes
                previous = started.continued_execution_run_id
                if not activities:
                    break
            elif e.HasField("activity_task_scheduled_event_attributes"):
                names[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            elif e.HasField("activity_task_completed_event_attributes"):
                a = e.activity_task_completed_event_attributes
                done[(a.identity, names.get(a.scheduled_event_id, "?"))] += 1
        runs.append(RunFigures(run_id, info.history_length, info.history_size_bytes, done))
        run_id = previous or None
    return runs[::-1]


def limits(runs: list[RunFigures]) -> dict[str, Any]:
    """The chain's largest history against Temporal's limits."""
    events = max(r.events for r in runs)
    size = max(r.bytes for r in runs)
    return {
        "runs": len(runs),
        "max_events": events,
        "max_history_bytes": size,
        "within_limits": events <= MAX_EVENTS and size <= MAX_BYTES,
    }


# --- imports -------------------------------------------------------------------------------


def _expected(gen: Generated) -> int:
    """Inserted into an empty workspace: the generator makes every duplicate repeat a plain
    row's email and every invalid row unique, so its distinct valid emails are these
    (twoworker checks the identity against distinct_valid's own count of the file)."""
    return gen.rows - gen.duplicate_rows - gen.invalid_rows


def _import_once(
    fenv: folks.FolksEnv, csv: Path, psql: Any, sampler: Sampler, expected: int, rows: int
) -> dict[str, Any]:
    """Upload, confirm, wait (folks.run_import), then the import's chain and exactness."""
    uid, wid = str(uuid.uuid4()), str(uuid.uuid4())
    psql.run(
        f"INSERT INTO users (id, email, name) VALUES ('{uid}', 'scale-{uid[:8]}@example.com', 'B');"
        f" INSERT INTO workspaces (id, name, owner_user_id) VALUES ('{wid}', 'scale', '{uid}');"
        f" INSERT INTO workspace_settings (workspace_id) VALUES ('{wid}');"
    )
    out = folks.run_import(fenv, csv, wid, uid, sampler)
    import_id = psql.scalar(f"SELECT id FROM imports WHERE workspace_id = '{wid}'")
    held = int(psql.scalar(f"SELECT count(*) FROM contacts WHERE workspace_id = '{wid}'"))
    counts = {k: out[k] for k in ("inserted", "updated", "failed", "duplicates")}
    why = None
    if sum(counts.values()) != rows:
        why = f"counts {counts} add up to {sum(counts.values())}, not {rows}"
    elif not (counts["inserted"] == expected == held):
        why = f"inserted {counts['inserted']}, distinct valid {expected}, held {held}"
    settings = folks._settings(fenv)

    async def histories() -> list[RunFigures]:
        from folksjobs.infra.temporal import connect
        from folksjobs.models import import_workflow_id

        return await chain(await connect(settings), import_workflow_id(str(import_id)))

    runs = asyncio.run(histories())
    return {
        "wall_s": out["wall_s"],
        "upload_s": out["upload_s"],
        "rows_per_s": rows / out["wall_s"],
        "counts": counts,
        "contacts": held,
        "inexact": why,
        "runs_figures": runs,
        **limits(runs),
    }


def _per_worker(runs: list[RunFigures], pids: dict[int, str]) -> dict[str, dict[str, int]]:
    """Activity completions per worker (named by core) and activity type."""
    by_pid = {f"{pid}@": name for pid, name in pids.items()}
    out: dict[str, dict[str, int]] = {}
    for r in runs:
        for (identity, kind), n in r.completions.items():
            who = next((v for k, v in by_pid.items() if identity.startswith(k)), identity)
            out.setdefault(who, {}).setdefault(kind, 0)
            out[who][kind] += n
    return out


def twoworker(stack: BenchStack, work: Path, queue: str, rows: int, seed: int) -> dict[str, Any]:
    csv = work / "files" / f"twoworker-{rows}.csv"
    gen = generate(rows, seed, csv)
    counted = distinct_valid(csv)
    out: dict[str, Any] = {"rows": rows, "distinct_valid": counted, "generator": _expected(gen)}
    fenv = folks.FolksEnv(stack, work / "folks", {}, queue)
    for name, cores in (("one", ["0"]), ("two", ["0", "1"])):
        print(f"[scale] twoworker {name} ({rows:,} rows, cores {','.join(cores)}) ...", flush=True)
        servers = Servers(stack)
        with Sampler() as sampler, contextlib.ExitStack() as running:
            workers = [
                running.enter_context(
                    folks.Worker(fenv, work / "runs" / f"twoworker-{name}-core{c}.log", cpus=c)
                )
                for c in cores
            ]
            for w in workers:
                sampler.watch(w.pid)
            res = _import_once(fenv, csv, stack.psql, sampler, counted, rows)
        runs = res.pop("runs_figures")
        names = {w.pid: f"core {c}" for w, c in zip(workers, cores, strict=True)}
        res["per_worker"] = _per_worker(runs, names)
        res["peak_rss_mb"] = round(sampler.peak_rss / 2**20)
        res["worker_cpu_s"] = round(sampler.cpu_seconds, 1)
        res.update(servers.read())
        print(f"[scale] twoworker {name}: {res}", flush=True)
        out[name] = res
    csv.unlink(missing_ok=True)
    one, two = out["one"], out["two"]
    out["speedup"] = two["rows_per_s"] / one["rows_per_s"]
    out["identical"] = one["counts"] == two["counts"] and one["contacts"] == two["contacts"]
    # Both workers took chunks: each completed process-batch activities of the import.
    out["both_took_chunks"] = len(two["per_worker"]) == 2 and all(
        kinds.get("process-batch", 0) > 0 for kinds in two["per_worker"].values()
    )
    out["exact"] = (
        not one["inexact"]
        and not two["inexact"]
        and out["identical"]
        and counted == gen.rows - gen.duplicate_rows - gen.invalid_rows
    )
    return out


def big(
    stack: BenchStack, work: Path, queue: str, rows: int, seed: int, chunks_per_run: int | None
) -> dict[str, Any]:
    csv = work / "files" / f"big-{rows}.csv"
    gen = generate(rows, seed, csv)
    overrides = {"UPLOAD_MAX_BYTES": str(gen.bytes + 2**20)}
    if chunks_per_run:
        overrides["IMPORT_CHUNKS_PER_RUN"] = str(chunks_per_run)
    fenv = folks.FolksEnv(stack, work / "folks", overrides, queue)
    print(f"[scale] big ({rows:,} rows, {gen.bytes / 2**20:.0f} MiB) ...", flush=True)
    servers = Servers(stack)
    with (
        RedisPeak(stack.valkey.url) as redis_peak,
        Sampler() as sampler,
        folks.Worker(fenv, work / "runs" / "big-worker.log") as w,
    ):
        sampler.watch(w.pid)
        res = _import_once(fenv, csv, stack.psql, sampler, _expected(gen), rows)
    csv.unlink(missing_ok=True)
    res.pop("runs_figures")
    res.update(
        rows=rows,
        file_mib=round(gen.bytes / 2**20),
        chunks_per_run=chunks_per_run or "default",
        peak_rss_mb=round(sampler.peak_rss / 2**20),
        rss_own_mb=round(sampler.peak_own_rss / 2**20),
        worker_cpu_s=round(sampler.cpu_seconds, 1),
        exact=res["inexact"] is None,
        # Chunks and dedup keys wait in Redis until process-batch takes them: what the
        # import holds outside the worker.
        redis_peak_mb=round(redis_peak.peak / 2**20),
        **servers.read(),
    )
    print(f"[scale] big: {res}", flush=True)
    return res


class RedisPeak:
    """Redis's largest `used_memory` over a block, polled every half second (its own
    used_memory_peak is the server's lifetime peak: CONFIG RESETSTAT leaves it)."""

    def __init__(self, url: str) -> None:
        from redis import Redis

        self.redis = Redis.from_url(url)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="redis-peak", daemon=True)

    def _loop(self) -> None:
        while True:
            used = int(self.redis.info("memory")["used_memory"])
            self.peak = max(self.peak, used)
            if self._stop.wait(0.5):
                return

    def __enter__(self) -> RedisPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.redis.close()


# --- digest ------------------------------------------------------------------------------

# Shares of the seeded workspaces, by what the digest should do with them.
NEW_THIS_WEEK = 0.4  # contacts created in the week: one email each
OLD_ONLY = 0.2  # contacts from a month ago only: skipped, no activity
DISABLED = 0.1  # new contacts, but the workspace switched the digest off
# the rest: no contacts at all


async def seed_workspaces(dsn: str, n: int, now: datetime) -> dict[str, int]:
    """n workspaces with their owners and settings, and contacts by the shares above, in
    four COPYs (the owner role, which row-level security does not restrict)."""
    import asyncpg

    users, spaces, settings, contacts = [], [], [], []
    kinds: Counter[str] = Counter()
    for i in range(n):
        uid, wid = uuid.uuid4(), uuid.uuid4()
        users.append((uid, f"owner{i}@example.com", f"Owner {i}"))
        spaces.append((wid, f"digest bench {i}", uid))
        x = (i * 0.6180339887) % 1  # spread evenly, deterministic
        kind = (
            "new" if x < NEW_THIS_WEEK
            else "old" if x < NEW_THIS_WEEK + OLD_ONLY
            else "disabled" if x < NEW_THIS_WEEK + OLD_ONLY + DISABLED
            else "empty"
        )  # fmt: skip
        kinds[kind] += 1
        settings.append((wid, kind != "disabled"))
        when = now - timedelta(days=30 if kind == "old" else 1)
        for j in range(0 if kind == "empty" else 2):
            contacts.append((wid, f"c{j}.{i}@{('acme', 'mail')[j]}.test", when, when))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("users", records=users, columns=["id", "email", "name"])
        await conn.copy_records_to_table(
            "workspaces", records=spaces, columns=["id", "name", "owner_user_id"]
        )
        await conn.copy_records_to_table(
            "workspace_settings", records=settings,
            columns=["workspace_id", "notify_weekly_digest"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "contacts", records=contacts,
            columns=["workspace_id", "email", "created_at", "updated_at"],
        )  # fmt: skip
        await conn.execute("ANALYZE workspaces; ANALYZE contacts; ANALYZE workspace_settings")
    finally:
        await conn.close()
    return dict(kinds)


EXPECTED_SQL = """
SELECT count(*) FROM workspaces w
LEFT JOIN workspace_settings s ON s.workspace_id = w.id
WHERE w.active AND coalesce(s.notify_weekly_digest, true) AND EXISTS (
  SELECT 1 FROM contacts c WHERE c.workspace_id = w.id
  AND c.created_at >= $1 AND c.created_at < $2)
"""


async def _digest(fenv: folks.FolksEnv, n: int) -> dict[str, Any]:
    import asyncpg

    from folksjobs.digest.stats import digest_week
    from folksjobs.infra.temporal import connect
    from folksjobs.models import WF_WEEKLY_DIGEST, WeeklyDigestInput, WeeklyDigestResult

    settings = folks._settings(fenv)
    dsn = fenv.stack.dsn
    # The run reports on the week ending now: the seeded "new" contacts (a day old) are in
    # it, the "old" ones (a month) are not.
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    kinds = await seed_workspaces(dsn, n, now - timedelta(minutes=1))
    seed_s = time.perf_counter() - t0
    week = digest_week(now)
    conn = await asyncpg.connect(dsn)
    try:
        expected = int(await conn.fetchval(EXPECTED_SQL, week.window_start, week.window_end))
        total = int(await conn.fetchval("SELECT count(*) FROM workspaces WHERE active"))
    finally:
        await conn.close()
    client = await connect(settings)
    # As the Schedule would start it, with the scheduled time given rather than read from
    # the Schedule's search attribute (one week, whatever the wall clock does meanwhile).
    wf_id = f"bench-digest-{uuid.uuid4().hex[:8]}"
    print(f"[scale] digest over {total:,} workspaces ({kinds}) ...", flush=True)
    t1 = time.perf_counter()
    handle = await client.start_workflow(
        WF_WEEKLY_DIGEST,
        WeeklyDigestInput(scheduled_for=now),
        id=wf_id,
        task_queue=settings.temporal_task_queue,
        result_type=WeeklyDigestResult,
    )
    res = await handle.result()
    wall = time.perf_counter() - t1
    runs = await chain(client, wf_id, activities=False)
    conn = await asyncpg.connect(dsn)
    try:
        ledger = int(
            await conn.fetchval(
                "SELECT count(*) FROM digest_sends WHERE week_start = $1 AND status = 'sent'",
                week.week_start,
            )
        )
        ids = {str(r["id"]) for r in await conn.fetch("SELECT id FROM workspaces")}
    finally:
        await conn.close()
    # This run's messages: the outbox folder outlives the stack, so an earlier bench run's
    # digests for the same week may be there too (other workspace ids).
    day = week.week_start.isoformat()
    outbox = sum(
        1
        for f in settings.outbox_dir.glob(f"digest-*-{day}-*.eml")
        if f.name[len("digest-") :][:36] in ids
    )
    s = res.summary
    outcomes = s.sent + s.skipped_disabled + s.skipped_no_activity + s.failed + s.already_sent
    return {
        "workspaces": total,
        "seeded": kinds,
        "seed_s": round(seed_s, 1),
        "wall_s": wall,
        "workspaces_per_s": total / wall,
        "summary": res.summary.model_dump(),
        "result_runs": res.runs,
        "with_activity": expected,
        "sent_ledger": ledger,
        "outbox_files": outbox,
        "exact": s.sent == expected == ledger == outbox and outcomes == total and not s.failed,
        **limits(runs),
    }


def digest(stack: BenchStack, work: Path, queue: str, workspaces: int) -> dict[str, Any]:
    fenv = folks.FolksEnv(stack, work / "folks", {}, queue)
    servers = Servers(stack)
    with Sampler() as sampler, folks.Worker(fenv, work / "runs" / "digest-worker.log") as w:
        sampler.watch(w.pid)
        res = asyncio.run(_digest(fenv, workspaces))
    res.update(servers.read())
    res["peak_rss_mb"] = round(sampler.peak_rss / 2**20)
    res["worker_cpu_s"] = round(sampler.cpu_seconds, 1)
    print(f"[scale] digest: {res}", flush=True)
    return res
