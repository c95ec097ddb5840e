"""Case `gravatar` (issue 25): an import with Gravatar on against the same import with it
off, in the same run, and how long the avatars take after it.

    python bench/avatars.py --sizes 20000,100000,1000000       # in the venv; its own stack
    python bench/run.py --cases gravatar                       # or as one of run.py's cases

For each size, the same generated file goes into a fresh workspace with a fresh
`python worker.py`, once per mode:
  off      GRAVATAR_ENABLED=false (the one comparison with lookups off; every other case
           runs with them on against bench/standins.py)
  instant  the stand-in answering at once (only at the smallest size: issue 25's "done when")
  on       the stand-in answering in --latency s (120 ms: Gravatar from a data centre),
           about one address in ten with an avatar
The stand-in is tests/fakes.py's FakeGravatar in its own process. With Gravatar on, the
bench then waits for the import's avatars job (`avatars-<import_id>`) to finish, at most
--wait-s seconds after the import; past that it records the rate it kept and cancels it.

Targets: import wall with Gravatar on <= 1.1x off; avatars complete within
(distinct addresses / rate) x 1.1 of the import's start; worker peak RSS unchanged
(on vs off, the same size). The rate is --rate (GRAVATAR_RATE_PER_SECOND), higher than the
default 100/s so the 100k case takes minutes rather than a quarter of an hour
(and low enough for two shared cores to keep up with).

Writes bench/gravatar.json; bench/report.py renders it as a section of results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import folks  # noqa: E402
from bench.generate import generate  # noqa: E402
from bench.sampler import Sampler  # noqa: E402
from bench.stack import BenchStack, start_stack  # noqa: E402
from bench.standins import HIT_EVERY, StandIn  # noqa: E402

ONE_PARTITION = [
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
]  # fmt: skip


def has_avatar(email: str) -> bool:
    """The stand-in's answer (FakeGravatar.has_avatar with hit_every)."""
    h = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return int(h[:8], 16) % HIT_EVERY == 0


def _forget_answers(stack: BenchStack) -> None:
    """Every mode and size starts with an empty Gravatar cache: the files share addresses."""
    from redis import Redis

    r = Redis.from_url(stack.valkey.url)
    try:
        keys = list(r.scan_iter(match="gravatar*", count=10_000))
        for i in range(0, len(keys), 10_000):
            r.delete(*keys[i : i + 10_000])
    finally:
        r.close()


def _workspace(psql: Any) -> tuple[str, str]:
    uid, wid = str(uuid.uuid4()), str(uuid.uuid4())
    psql.run(
        f"INSERT INTO users (id, email, name) VALUES ('{uid}', 'grav-{uid[:8]}@example.com', 'B');"
        f" INSERT INTO workspaces (id, name, owner_user_id) VALUES ('{wid}', 'grav', '{uid}');"
        f" INSERT INTO workspace_settings (workspace_id) VALUES ('{wid}');"
    )
    return uid, wid


async def _avatars(
    settings: Any, import_id: str, wait_s: float, dsn: str, workspace_id: str
) -> dict[str, Any]:
    """Wait for the import's avatars job; past `wait_s`, its progress and the avatars
    written so far checked, then cancel it."""
    from temporalio.client import WorkflowFailureError

    from folksjobs.infra.temporal import connect
    from folksjobs.models import AvatarProgress, avatars_workflow_id

    client = await connect(settings)
    handle = client.get_workflow_handle(avatars_workflow_id(import_id), result_type=AvatarProgress)
    t0 = time.monotonic()
    try:
        res = await asyncio.wait_for(handle.result(), wait_s)
        took = time.monotonic() - t0
        exact = await _exact(dsn, workspace_id)
        return {"complete": True, "after_import_s": took, **res.model_dump(), **exact}
    except TimeoutError:
        p = await handle.query("progress", result_type=AvatarProgress)
        waited = time.monotonic() - t0
        exact = await _exact(dsn, workspace_id)  # the owed ones aside
        await handle.cancel()
        with contextlib.suppress(WorkflowFailureError):  # cancelled, as asked
            await handle.result()
        return {"complete": False, "after_import_s": waited, **p.model_dump(), **exact}


async def _exact(dsn: str, workspace_id: str) -> dict[str, Any]:
    """Every contact's avatar against the stand-in's answer for its address."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT email, avatar_url IS NOT NULL AS has, avatar_pending IS NOT NULL AS owed"
            " FROM contacts WHERE workspace_id = $1::uuid",
            workspace_id,
        )
    finally:
        await conn.close()
    wrong = sum(1 for r in rows if not r["owed"] and r["has"] != has_avatar(r["email"]))
    return {
        "contacts": len(rows),
        "with_avatar": sum(1 for r in rows if r["has"]),
        "owed": sum(1 for r in rows if r["owed"]),
        "wrong": wrong,
    }


def _run_mode(
    stack: BenchStack,
    work: Path,
    queue: str,
    csv: Path,
    mode: str,
    standin: StandIn | None,
    a: argparse.Namespace,
    addresses: int,
    wait: float | None = None,
) -> dict[str, Any]:
    overrides: dict[str, str] = {"UPLOAD_MAX_BYTES": str(csv.stat().st_size + 2**20)}
    if standin is None:
        overrides["GRAVATAR_ENABLED"] = "false"  # the one comparison with lookups off
    else:
        overrides.update(
            GRAVATAR_ENABLED="true",
            GRAVATAR_BASE_URL=f"{standin.url}/avatar",
            GRAVATAR_RATE_PER_SECOND=str(a.rate),
            GRAVATAR_BATCH=str(a.batch),
            GRAVATAR_LANES=str(a.lanes),
            GRAVATAR_CONCURRENCY=str(a.concurrency),
        )
    fenv = folks.FolksEnv(stack, work / "folks", overrides, f"{queue}-{mode}")
    uid, wid = _workspace(stack.psql)
    _forget_answers(stack)
    if standin is not None:
        standin.reset()
    with Sampler() as sampler, folks.Worker(fenv, work / "runs" / f"{mode}-{csv.stem}.log") as w:
        sampler.watch(w.pid)
        imp = folks.run_import(fenv, csv, wid, uid, sampler)
        import_id = stack.psql.scalar(f"SELECT id FROM imports WHERE workspace_id = '{wid}'")
        out: dict[str, Any] = {"wall_s": imp["wall_s"], "inserted": imp["inserted"]}
        if standin is not None:
            # To the end up to --full-max addresses (3x the rate's time at most); past
            # that --wait-s, and the rate kept so far.
            if wait is None:
                wait = 3 * addresses / a.rate + 60 if addresses <= a.full_max else a.wait_s
            settings = folks._settings(fenv)
            av = asyncio.run(_avatars(settings, str(import_id), wait, stack.dsn, wid))
            out["avatars"] = av
        out["peak_rss_mb"] = round(sampler.peak_rss / 2**20)
    if standin is not None:
        seen = standin.stats()
        out["requests"] = seen["requests"]
        out["distinct_requests"] = seen["distinct"]
        out["max_requests_per_s"] = seen["max_per_second"]
        out["requests_span_s"] = seen["first_to_last_s"]
        out.update({k: av[k] for k in ("contacts", "with_avatar", "owed", "wrong")})
    print(f"[gravatar] {csv.stem} {mode}: {out}", flush=True)
    return out


def gravatar(stack: BenchStack, work: Path, queue: str, a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rate": a.rate, "latency_s": a.latency, "batch": a.batch, "lanes": a.lanes,
        "concurrency": a.concurrency, "wait_s": a.wait_s, "full_max": a.full_max, "sizes": {},
    }  # fmt: skip
    smallest = min(a.sizes)
    with StandIn(a.latency) as slow, StandIn(0.0) as instant:
        for rows in sorted(a.sizes):
            csv = work / "files" / f"gravatar-{rows}.csv"
            gen = generate(rows, a.seed, csv)
            distinct = gen.rows - gen.duplicate_rows - gen.invalid_rows
            modes: dict[str, StandIn | None] = {"off": None, "on": slow}
            if rows == smallest:
                modes = {"off": None, "instant": instant, "on": slow}
            res: dict[str, Any] = {"distinct": distinct}
            for mode, standin in modes.items():
                res[mode] = _run_mode(stack, work, queue, csv, mode, standin, a, distinct)
            # The import alone, off and on in turn (its avatars job cancelled at once): on
            # a shared machine one pair is noise, the median of a few is a ratio.
            res["pairs"] = [
                [
                    _run_mode(stack, work, queue, csv, "off", None, a, distinct)["wall_s"],
                    _run_mode(stack, work, queue, csv, "on", slow, a, distinct, 0.1)["wall_s"],
                ]
                for _ in range(a.pairs)
            ]
            csv.unlink(missing_ok=True)
            on, off = res["on"], res["off"]
            ratios = sorted([on["wall_s"] / off["wall_s"], *(b / o for o, b in res["pairs"])])
            res["import_on_over_off"] = ratios[len(ratios) // 2]
            res["import_ratios"] = ratios
            res["rss_on_over_off"] = on["peak_rss_mb"] / max(1, off["peak_rss_mb"])
            res["avatars_budget_s"] = distinct / a.rate * 1.1
            av = on["avatars"]
            res["avatars_from_start_s"] = on["wall_s"] + av["after_import_s"]
            if not av["complete"]:
                # The job asks from the import's end on (rows-committed).
                res["avatars_rate_kept"] = av["asked"] / av["after_import_s"]
            out["sizes"][str(rows)] = res
    return out


SECTION = "## Gravatar off the import's path (issue 25)"


def render(g: dict[str, Any]) -> list[str]:
    """bench/gravatar.json as a section of results.md (report.render appends it too)."""
    L = [
        SECTION,
        "",
        f"`{g.get('command', 'python bench/avatars.py')}` on {g.get('date', '?')} (commit "
        f"{g.get('git', '?')}), {g.get('total_s', 0) / 60:.0f} min. The same generated file "
        "per size into a fresh workspace and a fresh `python worker.py` per mode: Gravatar "
        f"off, and on against the stand-in answering in {g['latency_s'] * 1000:.0f} ms "
        f"(`instant`: 0 ms, smallest size only); GRAVATAR_RATE_PER_SECOND={g['rate']:g}, "
        f"BATCH={g['batch']}, LANES={g['lanes']}, CONCURRENCY={g['concurrency']}; the "
        "Temporal dev server with one partition per task queue (deploy/README.md). "
        "Avatars are timed from the import's start to its avatars job's end (to the end "
        f"up to {g.get('full_max', 150_000):,} addresses; past that for {g['wait_s']:.0f} s "
        "after the import, and the rate kept so far). Wrong avatars: contacts no longer "
        "owed whose avatar differs from the stand-in's answer.",
        "",
        "Import on/off is the median ratio over the first pair and any further "
        "import-only pairs (their avatars job cancelled at once), each ratio listed below.",
        "",
        "| rows | addresses | import off s | on s | on/off (<= 1.1) | avatars s | budget s "
        "(addresses/rate x 1.1) | | peak RSS off / on MB | requests (distinct) | "
        "max req in 1 s | wrong avatars |",
        "|---:|---:|---:|---:|---:|---:|---:|---|---|---|---:|---:|",
    ]
    for rows, r in sorted(g["sizes"].items(), key=lambda kv: int(kv[0])):
        on, off, av = r["on"], r["off"], r["on"]["avatars"]
        if av["complete"]:
            took = f"{r['avatars_from_start_s']:.0f}"
            met = "met" if r["avatars_from_start_s"] <= r["avatars_budget_s"] else "MISSED"
        else:
            kept = av["asked"] / av["after_import_s"]  # it asks from the import's end on
            took = (f"{av['done']:,} done {av['after_import_s']:.0f} s after the import "
                    f"({kept:.0f}/s; all at that rate: "
                    f"{on['wall_s'] + r['distinct'] / kept:,.0f} s)")  # fmt: skip
            met = "not waited"
        ratio = r["import_on_over_off"]
        L.append(
            f"| {int(rows):,} | {r['distinct']:,} | {off['wall_s']:.1f} | {on['wall_s']:.1f} "
            f"| {ratio:.2f} {'met' if ratio <= 1.1 else 'MISSED'} "
            f"| {took} | {r['avatars_budget_s']:.0f} | {met} "
            f"| {off['peak_rss_mb']} / {on['peak_rss_mb']} | {on['requests']:,} "
            f"({on['distinct_requests']:,}) | {on['max_requests_per_s']} | {on['wrong']} |"
        )
        if "instant" in r:
            i = r["instant"]
            i_took = i["wall_s"] + i["avatars"]["after_import_s"]
            L.append(
                f"| {int(rows):,} instant | | | {i['wall_s']:.1f} | on/instant "
                f"{on['wall_s'] / i['wall_s']:.2f} | {i_took:.0f} "
                f"| | | - / {i['peak_rss_mb']} | {i['requests']:,} ({i['distinct_requests']:,}) "
                f"| {i['max_requests_per_s']} | {i['wrong']} |"
            )
    for rows, r in sorted(g["sizes"].items(), key=lambda kv: int(kv[0])):
        if r.get("import_ratios"):
            shown = ", ".join(f"{x:.2f}" for x in r["import_ratios"])
            L.append(f"\n{int(rows):,} rows, import on/off ratios: {shown}")
    return [*L, ""]


def write_section(results_md: Path, g: dict[str, Any]) -> None:
    """This case's section of results.md, replaced (or appended); the others untouched."""
    text = results_md.read_text() if results_md.exists() else ""
    section = "\n".join(render(g))
    if SECTION in text:
        head, _, rest = text.partition(SECTION)
        tail = rest.split("\n## ", 1)
        text = head + section + ("\n## " + tail[1] if len(tail) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results_md.write_text(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_args(p)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench-gravatar")
    p.add_argument("--out", type=Path, default=ROOT / "bench")
    p.add_argument("--seed", type=int, default=42)
    return p.parse_args(argv)


def add_args(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument(f"--{prefix}sizes", default="20000,100000,1000000", type=_sizes)
    p.add_argument(f"--{prefix}rate", type=float, default=300.0, help="GRAVATAR_RATE_PER_SECOND")
    p.add_argument(f"--{prefix}latency", type=float, default=0.12, help="the stand-in's, in s")
    p.add_argument(f"--{prefix}batch", type=int, default=100, help="GRAVATAR_BATCH")
    p.add_argument(f"--{prefix}lanes", type=int, default=8, help="GRAVATAR_LANES")
    p.add_argument(f"--{prefix}concurrency", type=int, default=40, help="GRAVATAR_CONCURRENCY")
    p.add_argument(f"--{prefix}wait-s", type=float, default=150.0,
                   help="wait for the avatars after an import of more than --full-max")  # fmt: skip
    p.add_argument(f"--{prefix}pairs", type=int, default=0,
                   help="more import-only off/on pairs per size, for the median ratio")  # fmt: skip
    p.add_argument(f"--{prefix}full-max", type=int, default=150_000,
                   help="wait to the end when at most this many addresses")  # fmt: skip


def from_prefixed(args: argparse.Namespace, prefix: str = "gravatar_") -> argparse.Namespace:
    """bench/run.py's --gravatar-* options as this module's own."""
    own = {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}
    return argparse.Namespace(**own, seed=args.seed)


def _sizes(text: str) -> list[int]:
    return [int(s.replace("_", "")) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    t0 = time.monotonic()
    # One partition per task queue, as deploy/README.md asks of the avatars queue: with
    # four, Temporal splits the rate among them and the queue reaches ~85 % of it.
    stack = start_stack(a.work / "state", temporal_args=ONE_PARTITION)
    try:
        out = gravatar(stack, a.work, f"bench-{uuid.uuid4().hex[:8]}", a)
    finally:
        stack.stop()
    out["command"] = "python bench/avatars.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out["total_s"] = round(time.monotonic() - t0)
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out["git"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    (a.out / "gravatar.json").write_text(json.dumps(out, indent=1) + "\n")
    write_section(a.out / "results.md", out)
    print(f"[gravatar] wrote {a.out / 'gravatar.json'} and its section of results.md")


if __name__ == "__main__":
    main()
