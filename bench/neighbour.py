"""Tenants in the engine (issue 27): the cases "neighbour", "redis" and "stop".

    python bench/neighbour.py neighbour redis stop progress   # in the venv; defaults below
    python bench/neighbour.py neighbour --big-rows 100000 --small-imports 5   # a smoke run
    python bench/neighbour.py --report WORK/neighbour.json     # results.md's section

neighbour: one workspace imports --big-rows while another imports --small-rows files one
           after another. The small tenant's median and slowest import against its idle
           ones (the same file, alone, just before), and the big import's rows/s against
           alone. Run on a Temporal server with Priority and Fairness on, then on one with
           them off (a fresh stack each), and with --workers workers (1, then 2).
redis:     Redis `used_memory` sampled every 50 ms: its peak over the idle baseline for
           one --redis-rows import (continuing as new every --redis-chunks-per-run chunks),
           the largest count of its chunk keys held at once, and the dedup state's own
           size at the end (MEMORY USAGE of its keys) and bytes per distinct email;
           then --redis-imports imports of --redis-each rows confirmed at once: the peak
           chunk keys held against the sum of their bounds, (IMPORT_PARALLEL_CHUNKS +
           IMPORT_CHUNK_LEAD) each.
burst:     bench/tenants.py's burst (--workspaces x --rows confirmed at once, against one
           import of the same rows), fairness on and off.
progress:  one --progress-rows import per --sub-batches size, its durable progress
           (imports.processed_rows) sampled every 50 ms: the largest step, the longest
           time without a move, rows/s.
stop:      SIGTERM to the worker once a --stop-rows import has chunks done: seconds to
           exit against WORKER_GRACEFUL_SHUTDOWN_SECONDS + 5, then a second worker
           finishes the import, checked exact.

Every import is checked exact (counts add up; inserted = the file's distinct valid
emails = the contacts its workspace holds). Figures go to WORK/neighbour.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from redis import Redis  # noqa: E402

from bench import folks  # noqa: E402
from bench.generate import generate  # noqa: E402
from bench.stack import BenchStack, start_stack  # noqa: E402
from bench.tenants import Part, Tenants, breakdown, distinct_valid, timeline  # noqa: E402


class RedisPeak:
    """used_memory and the chunk keys held, sampled in a thread until stopped."""

    def __init__(self, url: str, interval: float = 0.05) -> None:
        self.redis = Redis.from_url(url)
        self.interval = interval
        self.base = int(self.redis.info("memory")["used_memory"])
        self.peak = self.base
        self.most_chunks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self.redis.info("memory")["used_memory"]))
            chunks = sum(1 for _ in self.redis.scan_iter(match="import:*:chunk:*", count=1000))
            self.most_chunks = max(self.most_chunks, chunks)
            time.sleep(self.interval)

    def __enter__(self) -> RedisPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mb(self) -> float:
        return round((self.peak - self.base) / 2**20, 1)


def _part(args: argparse.Namespace, rows: int, name: str) -> Part:
    path = args.work / "files" / f"{name}-{rows}.csv"
    if not path.exists():
        generate(rows, args.seed, path)
    return Part(path, rows, distinct_valid(path))


async def _import(t: Tenants, part: Part, ws: tuple[str, str] | None = None) -> dict[str, Any]:
    uid, wid = ws or await t.workspace()
    import_id = await t.upload(part.path, wid, uid)
    res, seconds, handle = await t.run_import(wid, import_id)
    return {
        "s": seconds,
        "rows_per_s": part.rows / seconds,
        "inexact": None if ws else await t.exact(wid, res, part),
        "handle": handle,
    }


# --- neighbour ----------------------------------------------------------------------------


async def _neighbour(t: Tenants, args: argparse.Namespace, big: Part, small: Part) -> Any:
    tenant = await t.workspace()
    await _import(t, small, tenant)  # its contacts exist: every counted import updates
    idle = []
    for _ in range(args.small_imports):
        last_idle = await _import(t, small, tenant)
        idle.append(last_idle["s"])
    alone = await _import(t, big)
    uid, wid = await t.workspace()
    import_id = await t.upload(big.path, wid, uid)
    started = time.perf_counter()
    together = asyncio.create_task(t.run_import(wid, import_id))
    beside: list[float] = []
    slowest: Any = None
    while not together.done():
        one = await _import(t, small, tenant)
        if not beside or one["s"] > max(beside):
            slowest = one["handle"]
        beside.append(one["s"])
    res, seconds, _ = await together
    beside = beside[:-1] if len(beside) > 1 else beside  # the last one overran the big one
    idle_history = await last_idle["handle"].fetch_history()
    idle_median = statistics.median(idle)
    return {
        "idle_median_s": round(idle_median, 3),
        "beside_median_s": round(statistics.median(beside), 3),
        "beside_slowest_s": round(max(beside), 3),
        "beside_imports": len(beside),
        "median_over_idle": round(statistics.median(beside) / idle_median, 2),
        "slowest_over_idle": round(max(beside) / idle_median, 2),
        "big_alone_s": round(alone["s"], 1),
        "big_beside_s": round(seconds, 1),
        "big_beside_over_alone": round(alone["s"] / seconds, 2),
        "big_started_to_done_s": round(time.perf_counter() - started, 1),
        "inexact": alone["inexact"] or await t.exact(wid, res, big),
        # Where a small import's time went (bench/tenants.py: breakdown, timeline).
        "idle_history_ms": breakdown(idle_history),
        "slowest_beside_history_ms": breakdown(await slowest.fetch_history()),
        "slowest_beside_timeline": timeline(await slowest.fetch_history()),
    }


def neighbour(args: argparse.Namespace) -> dict[str, Any]:
    big = _part(args, args.big_rows, "big")
    small = _part(args, args.small_rows, "small")
    out: dict[str, Any] = {}
    for fairness in args.fairness:
        stack = start_stack(args.work / "state", fairness=fairness)
        try:
            for workers in args.workers:
                name = f"fairness {'on' if fairness else 'off'}, {workers} worker(s)"
                out[name] = _with_workers(stack, args, workers, name,
                                          lambda t: _neighbour(t, args, big, small))  # fmt: skip
        finally:
            stack.stop()
    return out


def _with_workers(
    stack: BenchStack, args: argparse.Namespace, workers: int, name: str, run: Any
) -> Any:
    fenv = folks.FolksEnv(stack, args.work / "folks", dict(args.env))
    print(f"[neighbour] {name} ...", flush=True)
    procs = [folks.Worker(fenv, args.work / "runs" / f"{name}-{n}.log") for n in range(workers)]
    for p in procs:
        p.__enter__()
    try:

        async def go() -> Any:
            async with Tenants(fenv) as t:
                return await run(t)

        res = asyncio.run(go())
    finally:
        for p in procs:
            p.__exit__(None, None, None)
    print(f"[neighbour] {name}: {json.dumps(res, default=str)}", flush=True)
    return res


# --- redis --------------------------------------------------------------------------------


async def _redis(t: Tenants, args: argparse.Namespace, one: Part, each: Part, url: str) -> Any:
    from folksjobs.infra import rediskeys

    r = Redis.from_url(url)
    with RedisPeak(url) as single:
        uid, wid = await t.workspace()
        import_id = await t.upload(one.path, wid, uid)
        dedup_bytes = 0

        def state_size() -> int:
            """MEMORY USAGE of every key of the import's dedup state (dedup.Claims): its
            bucket sets and claims hash, or the one hash of the releases before."""
            keys = [rediskeys.dedup_claims(import_id), rediskeys.seen_emails(import_id)]
            keys += r.scan_iter(match=rediskeys.seen_bucket_prefix(import_id) + "*", count=10_000)
            pipe = r.pipeline(transaction=False)
            for k in keys:
                pipe.memory_usage(k, samples=0)
            return sum(int(n or 0) for n in pipe.execute())

        async def hash_size() -> None:
            nonlocal dedup_bytes
            while True:  # the state is deleted by finalize: its size just before
                dedup_bytes = max(dedup_bytes, await asyncio.to_thread(state_size))
                await asyncio.sleep(1.0)

        sizer = asyncio.create_task(hash_size())
        res, seconds, _ = await t.run_import(wid, import_id)
        sizer.cancel()
        inexact = await t.exact(wid, res, one)
    tenants = [await t.workspace() for _ in range(args.redis_imports)]
    ids = [await t.upload(each.path, wid, uid) for uid, wid in tenants]
    with RedisPeak(url) as many:
        done = await asyncio.gather(
            *(t.run_import(wid, i) for (_, wid), i in zip(tenants, ids, strict=True))
        )
    bound = int(args.env.get("IMPORT_PARALLEL_CHUNKS", 4)) + int(
        args.env.get("IMPORT_CHUNK_LEAD", 4)
    )
    return {
        "one_rows": one.rows,
        "one_s": round(seconds, 1),
        "one_peak_mb": single.peak_mb,
        "one_most_chunks_held": single.most_chunks,
        "one_dedup_hash_mb": round(dedup_bytes / 2**20, 1),
        "one_distinct_emails": one.distinct_valid,
        "one_dedup_bytes_per_email": round(dedup_bytes / max(1, one.distinct_valid), 1),
        "bound_chunks_each": bound,
        "many": args.redis_imports,
        "many_peak_mb": many.peak_mb,
        "many_most_chunks_held": many.most_chunks,
        "many_bound_chunks": bound * args.redis_imports,
        "inexact": inexact
        or [
            why
            for (_, wid), (res, _, _) in zip(tenants, done, strict=True)
            if (why := await t.exact(wid, res, each))
        ]
        or None,
    }


def redis_case(args: argparse.Namespace) -> dict[str, Any]:
    one = _part(args, args.redis_rows, "redis")
    each = _part(args, args.redis_each, "redis-each")
    stack = start_stack(args.work / "state")
    env = {"IMPORT_CHUNKS_PER_RUN": str(args.redis_chunks_per_run), **args.env}
    try:
        run = argparse.Namespace(**{**vars(args), "env": env})
        url = stack.valkey.url
        return _with_workers(stack, run, 1, "redis", lambda t: _redis(t, args, one, each, url))
    finally:
        stack.stop()


# --- stop ---------------------------------------------------------------------------------


async def _stop(t: Tenants, args: argparse.Namespace, part: Part, worker: folks.Worker) -> Any:
    from folksjobs.models import ImportProgress

    uid, wid = await t.workspace()
    import_id = await t.upload(part.path, wid, uid)
    from folksjobs.confirm import confirm_import

    handle = await confirm_import(t.client, t.pool, t.settings, wid, import_id)
    while (p := await handle.query("progress", result_type=ImportProgress)).chunks_done < 3:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    assert worker.proc is not None
    sent = time.perf_counter()
    worker.proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(worker.proc.wait)
    stopped = time.perf_counter() - sent
    grace = float(args.env.get("WORKER_GRACEFUL_SHUTDOWN_SECONDS", 30))
    log = args.work / "runs" / "stop-second.log"
    with folks.Worker(folks.FolksEnv(worker.fenv.stack, args.work / "folks", dict(args.env),
                                     worker.fenv.task_queue), log):  # fmt: skip
        raw = await handle.result()
    from folksjobs.models import ImportResult

    res = raw if isinstance(raw, ImportResult) else ImportResult.model_validate(raw)
    return {
        "rows": part.rows,
        "chunks_done_at_sigterm": p.chunks_done,
        "chunks_total": p.chunks_total,
        "exit_s": round(stopped, 2),
        "exit_code": worker.proc.returncode,
        "grace_s": grace,
        "within_grace_plus_5": stopped <= grace + 5,
        "inexact": await t.exact(wid, res.model_dump(), part),
    }


def stop_case(args: argparse.Namespace) -> dict[str, Any]:
    part = _part(args, args.stop_rows, "stop")
    stack = start_stack(args.work / "state")
    try:
        fenv = folks.FolksEnv(stack, args.work / "folks", dict(args.env))
        with folks.Worker(fenv, args.work / "runs" / "stop-first.log") as w:

            async def go() -> Any:
                async with Tenants(fenv) as t:
                    return await _stop(t, args, part, w)

            res = asyncio.run(go())
        print(f"[neighbour] stop: {json.dumps(res)}", flush=True)
        return res
    finally:
        stack.stop()


# --- progress -----------------------------------------------------------------------------


async def _progress(t: Tenants, part: Part) -> dict[str, Any]:
    """One import, its durable progress (imports.processed_rows, what the API's progress
    stream and the UI read) sampled every 50 ms: the largest step and the longest still."""
    uid, wid = await t.workspace()
    import_id = await t.upload(part.path, wid, uid)
    seen: list[tuple[float, int]] = []
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            n = await t.owner.fetchval(
                "SELECT processed_rows FROM imports WHERE id = $1::uuid", import_id
            )
            if not seen or n != seen[-1][1]:
                seen.append((time.perf_counter(), int(n)))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    res, seconds, _ = await t.run_import(wid, import_id)
    done.set()
    await sampler
    # From the first move to the last: before it the file is being chunked.
    moves = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(seen[1:])]
    return {
        "rows_per_s": round(part.rows / seconds),
        "s": round(seconds, 1),
        "moves": len(moves),
        "largest_step_rows": max((r for _, r in moves), default=0),
        "longest_still_s": round(max((s for s, _ in moves), default=0.0), 2),
        "inexact": await t.exact(wid, res, part),
    }


def progress_case(args: argparse.Namespace) -> dict[str, Any]:
    part = _part(args, args.progress_rows, "progress")
    stack = start_stack(args.work / "state")
    out = {}
    try:
        for size in args.sub_batches:
            env = {**args.env, "IMPORT_SUB_BATCH_ROWS": str(size)}
            out[f"sub-batch {size}"] = _with_workers(
                stack, argparse.Namespace(**{**vars(args), "env": env}), 1,
                f"progress, sub-batch {size}", lambda t: _progress(t, part),
            )  # fmt: skip
    finally:
        stack.stop()
    return out


# --- burst --------------------------------------------------------------------------------


def burst_case(args: argparse.Namespace) -> dict[str, Any]:
    """bench/tenants.py's burst (W x R at once against one W x R import), fairness on and off."""
    from bench import tenants

    out = {}
    for fairness in args.fairness:
        stack = start_stack(args.work / "state", fairness=fairness)
        try:
            run = argparse.Namespace(**{**vars(args), "work": args.work / "burst"})
            queue = f"bench-{uuid.uuid4().hex[:8]}"
            out[f"fairness {'on' if fairness else 'off'}"] = tenants.burst(stack, run, queue)
        finally:
            stack.stop()
    return out


# --- the report ---------------------------------------------------------------------------


def report(out: dict[str, Any]) -> str:
    """bench/results.md's section for a run's neighbour.json (`--report FILE`)."""
    lines: list[str] = []
    add = lines.append
    if nb := out.get("neighbour"):
        add("**neighbour** (the small tenant's imports against its idle ones; the big one's")
        add("time alone over beside: 1.0 = as fast as alone)\n")
        add("| server, workers | idle median s | beside median s (x idle) | slowest s (x idle) "
            "| small imports | big alone s | big beside s | alone/beside | exact |")  # fmt: skip
        add("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name, r in nb.items():
            add(f"| {name} | {r['idle_median_s']} | {r['beside_median_s']} "
                f"({r['median_over_idle']}x) | {r['beside_slowest_s']} "
                f"({r['slowest_over_idle']}x) | {r['beside_imports']} | {r['big_alone_s']} "
                f"| {r['big_beside_s']} | {r['big_beside_over_alone']} "
                f"| {'yes' if not r['inexact'] else r['inexact']} |")  # fmt: skip
        add("")
    if r := out.get("redis"):
        add(f"**redis**: one {r['one_rows']:,}-row import ({r['one_s']} s): Redis peak "
            f"+{r['one_peak_mb']} MB over idle, at most {r['one_most_chunks_held']} chunk keys "
            f"held (bound {r['bound_chunks_each']}), its dedup state {r['one_dedup_hash_mb']} MB "
            f"at its largest ({r.get('one_dedup_bytes_per_email', '?')} B per distinct "
            f"email). {r['many']} imports at once: peak +{r['many_peak_mb']} MB, at "
            f"most {r['many_most_chunks_held']} chunk keys held (sum of bounds "
            f"{r['many_bound_chunks']}); exact: {'NO' if r['inexact'] else 'yes'}.\n")  # fmt: skip
    if r := out.get("stop"):
        add(f"**stop**: SIGTERM at chunk {r['chunks_done_at_sigterm']} of {r['chunks_total']} "
            f"of a {r['rows']:,}-row import: the worker exited in {r['exit_s']} s (code "
            f"{r['exit_code']}; bound {r['grace_s']:.0f} + 5 s: "
            f"{'met' if r['within_grace_plus_5'] else 'MISSED'}); a second worker finished "
            f"it, exact: {'yes' if not r['inexact'] else r['inexact']}.\n")  # fmt: skip
    if pr := out.get("progress"):
        add("**progress** (durable progress sampled every 50 ms)\n")
        add("| sub-batch rows | rows/s | s | moves | largest step (rows) | longest still (s) |")
        add("|---:|---:|---:|---:|---:|---:|")
        for name, r in pr.items():
            add(f"| {name.split()[-1]} | {r['rows_per_s']:,} | {r['s']} | {r['moves']} "
                f"| {r['largest_step_rows']:,} | {r['longest_still_s']} |")  # fmt: skip
        add("")
    if bu := out.get("burst"):
        add("**burst** (40 x 25,000 at once against one 1M import)\n")
        add("| server | single rows/s | burst rows/s | burst/single | median s | slowest s "
            "| slowest/median | exact |")  # fmt: skip
        add("|---|---:|---:|---:|---:|---:|---:|---|")
        for name, r in bu.items():
            b, one = r["burst"], r["single"]
            add(f"| {name} | {one['rows_per_s']:,.0f} | {b['rows_per_s']:,.0f} "
                f"| {r['burst_over_single']:.2f} | {b['median_s']:.1f} | {b['slowest_s']:.1f} "
                f"| {b['slowest_over_median']:.2f} "
                f"| {'yes' if not (b['inexact'] or one['inexact']) else 'NO'} |")  # fmt: skip
        add("")
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cases", nargs="+", choices=["neighbour", "redis", "stop", "progress", "burst"])
    p.add_argument("--big-rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=1_000)
    p.add_argument("--small-imports", type=int, default=10, help="idle imports of the small file")
    p.add_argument("--workers", default="1,2", help="neighbour: worker counts to run")
    p.add_argument("--fairness", default="on,off", help="neighbour, burst: servers to run")
    p.add_argument("--redis-rows", type=int, default=2_000_000)
    p.add_argument("--redis-chunks-per-run", type=int, default=50)
    p.add_argument("--redis-imports", type=int, default=20)
    p.add_argument("--redis-each", type=int, default=50_000)
    p.add_argument("--stop-rows", type=int, default=2_000_000)
    p.add_argument("--progress-rows", type=int, default=1_000_000)
    p.add_argument("--sub-batches", default="5000,1000", help="progress: sub-batch sizes")
    p.add_argument("--workspaces", type=int, default=40, help="burst: W")
    p.add_argument("--rows", type=int, default=25_000, help="burst: R rows per workspace")
    p.add_argument("--seed", type=int, default=42)
    folks.add_env_option(p)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench-neighbour")
    args = p.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    args.fairness = [f == "on" for f in args.fairness.split(",")]
    args.sub_batches = [int(w) for w in args.sub_batches.split(",")]
    args.env = folks.env_settings(p, args)
    return args


def main(argv: list[str] | None = None) -> None:
    if argv is None and sys.argv[1:2] == ["--report"]:
        print(report(json.loads(Path(sys.argv[2]).read_text())))
        return
    args = parse_args(argv)
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    run_id = uuid.uuid4().hex[:8]
    try:
        cases = (("neighbour", neighbour), ("redis", redis_case), ("stop", stop_case),
                 ("progress", progress_case), ("burst", burst_case))  # fmt: skip
        for case, run in cases:
            if case in args.cases:
                t0 = time.perf_counter()
                out[case] = run(args)
                out[f"{case}_case_s"] = round(time.perf_counter() - t0)
    finally:
        args.work.mkdir(parents=True, exist_ok=True)
        (args.work / "neighbour.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"[neighbour] run {run_id}: wrote {args.work / 'neighbour.json'}")


if __name__ == "__main__":
    main()
