"""Email delivery against a Resend-style stand-in (issue 26): the cases "digest" and "blip".

    python bench/delivery.py digest --workspaces 2000 --rate 2 --batch 100   # in the venv
    python bench/delivery.py digest --workspaces 200 --rate 2 --batch 1      # one by one
    python bench/delivery.py blip --digests 200 --welcomes 40 --rate 5 --outage 45

digest: the weekly digest over N workspaces, each with a new contact (N digests to send),
        through folksjobs.devtools.mailstandin at `--rate` requests a second, with
        EMAIL_RATE_PER_SECOND at the same rate and EMAIL_BATCH_SIZE `--batch`. Against the
        floor: requests / rate, requests being N / batch (rounded up per page).
blip:   the issue's run: a manual digest over `--digests` workspaces and `--welcomes`
        welcome emails started together, the provider down (503) for the first
        `--outage` seconds and accepting `--rate` a second after. Every email must be
        delivered exactly once; the run's length is compared with outage + N / rate.

It starts its own stack under --work, the stand-in inside this process and the workers as
their own processes (`python worker.py`, `--workers` of them). Figures go to
WORK/delivery.json and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import folks  # noqa: E402
from bench.stack import BenchStack, start_stack  # noqa: E402
from folksjobs.devtools.mailstandin import MailStandIn  # noqa: E402


async def seed(
    dsn: str, tag: str, workspaces: int, welcomes: int, now: datetime
) -> tuple[set[str], list[str]]:
    """`workspaces` with a new contact each (one digest each), the only active ones, and
    `welcomes` new users: (every address that must get exactly one email, the new users)."""
    import asyncpg

    users, spaces, contacts = [], [], []
    for i in range(workspaces):
        uid, wid = uuid.uuid4(), uuid.uuid4()
        users.append((uid, f"owner{i}.{tag}@example.com", f"Owner {i}"))
        spaces.append((wid, f"email bench {i}", uid))
        contacts.append((wid, f"c.{i}@acme.test", now - timedelta(days=1)))
    newcomers = [(uuid.uuid4(), f"new{i}.{tag}@example.com", f"New {i}") for i in range(welcomes)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE workspaces SET active = false")  # earlier phases
        await conn.copy_records_to_table(
            "users", records=users + newcomers, columns=["id", "email", "name"]
        )
        await conn.copy_records_to_table(
            "workspaces", records=spaces, columns=["id", "name", "owner_user_id"]
        )
        await conn.copy_records_to_table(
            "contacts", records=contacts, columns=["workspace_id", "email", "created_at"]
        )
    finally:
        await conn.close()
    return {u[1] for u in users + newcomers}, [str(u[0]) for u in newcomers]


def _env(provider: MailStandIn, rate: float, batch: int, extra: dict[str, str]) -> dict[str, str]:
    return {
        "EMAIL_BACKEND": "http",
        "EMAIL_API_URL": provider.url,
        "EMAIL_RATE_PER_SECOND": str(rate),
        "EMAIL_BATCH_SIZE": str(batch),
        **extra,
    }


async def _run(
    stack: BenchStack, args: argparse.Namespace, case: str, phase: str
) -> dict[str, Any]:
    from temporalio.client import Client

    from folksjobs.digest.stats import digest_week
    from folksjobs.infra.temporal import connect
    from folksjobs.models import (
        WF_SEND_WELCOME,
        WF_WEEKLY_DIGEST,
        SendWelcomeInput,
        WeeklyDigestInput,
        WeeklyDigestResult,
        welcome_workflow_id,
    )

    digests = args.workspaces if case == "digest" else args.digests
    welcomes = 0 if case == "digest" else args.welcomes
    batch = args.batch if case == "digest" else 1
    now = datetime.now(UTC)
    wanted, newcomers = await seed(stack.dsn, phase, digests, welcomes, now)
    async with MailStandIn(rate=args.rate) as provider:
        fenv = folks.FolksEnv(stack, args.work / phase, _env(provider, args.rate, batch, args.env))
        settings = folks._settings(fenv)
        client: Client = await connect(settings)
        workers = [
            folks.Worker(fenv, args.work / "runs" / f"{phase}-worker{i}.log")
            for i in range(args.workers)
        ]
        for w in workers:
            await asyncio.to_thread(w.__enter__)
        try:
            if case == "blip":
                provider.outage(args.outage)
            t0 = time.monotonic()
            digest = await client.start_workflow(
                WF_WEEKLY_DIGEST,
                WeeklyDigestInput(scheduled_for=now),
                id=f"bench-digest-{uuid.uuid4().hex[:8]}",
                task_queue=fenv.task_queue,
                result_type=WeeklyDigestResult,
            )
            handles = [
                await client.start_workflow(
                    WF_SEND_WELCOME,
                    SendWelcomeInput(user_id=u),
                    id=welcome_workflow_id(u),
                    task_queue=fenv.task_queue,
                )
                for u in newcomers
            ]
            ends: list[float] = []

            async def done(h: Any) -> Any:
                r = await h.result()
                ends.append(time.monotonic() - t0)
                return r

            result, *_ = await asyncio.gather(done(digest), *(done(h) for h in handles))
            wall = time.monotonic() - t0
        finally:
            for w in workers:
                await asyncio.to_thread(w.__exit__)
    week = digest_week(now)
    per_to = Counter(d.to for d in provider.delivered)
    requests = math.ceil(digests / batch) + welcomes if batch > 1 else digests + welcomes
    floor = requests / args.rate + (args.outage if case == "blip" else 0)
    out = {
        "case": case,
        "phase": phase,
        "digests": digests,
        "welcomes": welcomes,
        "batch": batch,
        "rate": args.rate,
        "outage_s": args.outage if case == "blip" else 0,
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "floor_s": round(floor, 1),
        "ratio": round(wall / floor, 2),
        "welcomes_done_s": round(max(ends[1:], default=0), 1),
        "summary": result.summary.model_dump(),
        "runs": result.runs,
        "week": str(week.week_start),
        "delivered": len(provider.delivered),
        "exactly_once": set(per_to) == wanted and set(per_to.values()) == {1},
        "requests": len(provider.times),
        "answers": dict(sorted(provider.statuses.items())),
        "first_delivery_s": round(min(d.at for d in provider.delivered) - t0, 1)
        if provider.delivered
        else None,
    }
    print(f"[delivery] {json.dumps(out)}", flush=True)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("cases", nargs="+", choices=["digest", "blip"])
    p.add_argument("--workspaces", type=int, default=2000, help="digest: N workspaces")
    p.add_argument("--batch", type=int, default=100, help="digest: EMAIL_BATCH_SIZE")
    p.add_argument("--digests", type=int, default=200, help="blip: workspaces")
    p.add_argument("--welcomes", type=int, default=40, help="blip: welcome emails")
    p.add_argument("--outage", type=float, default=45.0, help="blip: seconds of 503 at start")
    p.add_argument("--rate", type=float, default=2.0, help="the provider's and ours, per s")
    p.add_argument("--workers", type=int, default=1)
    folks.add_env_option(p)
    p.add_argument("--work", type=Path, default=ROOT / "var" / "bench-delivery")
    args = p.parse_args(argv)
    args.env = folks.env_settings(p, args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    stack = start_stack(args.work / "state")
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "runs": []}
    try:
        for case in args.cases:
            phase = f"{case}-{uuid.uuid4().hex[:6]}"
            out["runs"].append(asyncio.run(_run(stack, args, case, phase)))
    finally:
        stack.stop()
        args.work.mkdir(parents=True, exist_ok=True)
        (args.work / "delivery.json").write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"[delivery] wrote {args.work / 'delivery.json'}")


if __name__ == "__main__":
    main()
