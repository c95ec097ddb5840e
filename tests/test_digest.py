"""weekly-digest end to end: emails in the outbox, statistics, at-most-once, the Schedule.

Other tests' workspaces live in the same database and every digest run visits them all,
so each test asserts on its own workspaces (their owners' emails, their digest_sends
rows, its failed ids) and reports on its own weeks, in which nobody else has contacts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from temporalio.client import Client, WorkflowFailureError

from folksjobs.devtools import seed
from folksjobs.digest.schedules import (
    CronError,
    DigestSchedule,
    apply_schedule,
    backfill,
    backfill_range,
    cron_calendar,
    describe,
    set_paused,
)
from folksjobs.digest.stats import DigestStats, digest_week, gather_stats
from folksjobs.infra import db
from folksjobs.models import (
    WF_WEEKLY_DIGEST,
    WeeklyDigestInput,
    WeeklyDigestResult,
    digest_send_key,
)
from folksjobs.notify.mailer import Email, OutboxSender
from tests.conftest import Stack, make_settings, running_worker
from tests.fakes import FakeEmailProvider

ROOT = Path(__file__).resolve().parent.parent
# A Monday 08:00 UTC: the run reports on [2025-02-24 08:00, 2025-03-03 08:00).
T = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)


def outbox(folder: Path) -> list[Message]:
    return [message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def text_of(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()  # type: ignore[union-attr]
    raise AssertionError("no text part")


def to(msgs: list[Message], email: str) -> list[Message]:
    return [m for m in msgs if m["To"] == email]


class Workspaces:
    """This test's owners and workspaces; deactivated afterwards so later runs skip them."""

    def __init__(self, owner: asyncpg.Pool) -> None:
        self.owner = owner
        self.ids: list[str] = []

    async def new(self, *, digest: bool = True) -> tuple[str, str]:
        email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
        uid = await seed.create_user(self.owner, email, "Digest Owner")
        wid = await seed.create_workspace(
            self.owner, uid, "Acme <R&D>", notify_weekly_digest=digest
        )
        self.ids.append(wid)
        return wid, email

    async def contacts(self, wid: str, *rows: tuple[str, datetime]) -> None:
        await self.owner.executemany(
            "INSERT INTO contacts (workspace_id, email, created_at) VALUES ($1::uuid, $2, $3)",
            [(wid, email, at) for email, at in rows],
        )

    async def imports(self, wid: str, *rows: tuple[str, datetime]) -> None:
        uid = await self.owner.fetchval(
            "SELECT owner_user_id FROM workspaces WHERE id = $1::uuid", wid
        )
        await self.owner.executemany(
            "INSERT INTO imports (id, workspace_id, user_id, status, file_name, blob_key,"
            " completed_at) VALUES ($1, $2::uuid, $3, $4, 'c.csv', 'k', $5)",
            [(uuid.uuid4(), wid, uid, status, at) for status, at in rows],
        )

    async def sends(self, wid: str) -> list[tuple[date, str]]:
        rows = await self.owner.fetch(
            "SELECT week_start, status FROM digest_sends WHERE workspace_id = $1::uuid"
            " ORDER BY week_start",
            wid,
        )
        return [(r["week_start"], r["status"]) for r in rows]


@pytest.fixture
async def spaces(owner_pool: asyncpg.Pool) -> AsyncIterator[Workspaces]:
    ws = Workspaces(owner_pool)
    yield ws
    await owner_pool.execute(
        "UPDATE workspaces SET active = false WHERE id = ANY($1::uuid[])", ws.ids
    )


async def delete_owner(owner: asyncpg.Pool, wid: str) -> None:
    """The owner vanishes from the user directory while the workspace stays.

    The schema's foreign key forbids that, so this one session skips FK triggers
    (session_replication_role: superuser, test-only).
    """
    async with owner.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "DELETE FROM users WHERE id = (SELECT owner_user_id FROM workspaces"
            " WHERE id = $1::uuid)",
            wid,
        )


async def run_digest(client: Client, task_queue: str, at: datetime) -> WeeklyDigestResult:
    return await client.execute_workflow(
        WF_WEEKLY_DIGEST,
        WeeklyDigestInput(scheduled_for=at),
        id=f"digest-test-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=WeeklyDigestResult,
    )


# --- the week, the cron, the backfill range: plain functions -------------------------------


def test_week_comes_from_the_scheduled_time() -> None:
    w = digest_week(T)
    assert (w.week_start, w.window_start, w.window_end) == (
        date(2025, 2, 24),
        datetime(2025, 2, 24, 8, tzinfo=UTC),
        T,
    )
    # A manual trigger later in the week is the same week: at most one digest.
    assert digest_week(T + timedelta(days=2, hours=5)).week_start == date(2025, 2, 24)
    assert digest_week(T + timedelta(days=7)).week_start == date(2025, 3, 3)
    with pytest.raises(ValueError, match="no time zone"):
        digest_week(datetime(2025, 3, 3, 8))


def test_cron_and_backfill_inputs_are_checked() -> None:
    cal = cron_calendar("0 8 * * 1")
    assert [(r.start, r.end) for r in cal.hour] == [(8, 8)]
    assert [(r.start, r.end) for r in cal.day_of_week] == [(1, 1)]
    assert [(r.start, r.end) for r in cron_calendar("0 8 * * SUN").day_of_week] == [(0, 0)]
    for bad, why in [
        ("0 8 * *", "want 5 fields"),
        ("0 25 * * 1", "outside 0-23"),
        ("0 8 1 * 1", "not both"),
        ("0 8 * * MONDAY", "not a number"),
        ("0 8 * * 5-2", "backwards"),
    ]:
        with pytest.raises(CronError, match=why):
            cron_calendar(bad)
    today = date(2026, 11, 25)
    with pytest.raises(ValueError, match="before --from"):
        backfill_range(date(2025, 1, 20), date(2025, 1, 6), today=today)
    with pytest.raises(ValueError, match="not in the past"):
        backfill_range(date(2026, 11, 1), today, today=today)


# --- the job ------------------------------------------------------------------------------


async def test_digest_emails_stats_and_isolation(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, spaces: Workspaces, task_queue: str
) -> None:
    week = digest_week(T)
    start = week.window_start
    busy, busy_email = await spaces.new()
    await spaces.contacts(
        busy,
        ("old@z.com", T - timedelta(days=30)),
        ("before@a.com", start - timedelta(seconds=1)),  # just before the window: total only
        ("edge@a.com", start),  # exactly 7 days before T: new
        ("a1@a.com", T - timedelta(days=3)),
        ("a2@a.com", T - timedelta(days=3)),
        ("b1@b.com", T - timedelta(days=2)),
        ("b2@B.com", T - timedelta(days=2)),
        ("c1@c.com", T - timedelta(days=1)),
        ("c2@c.com", T - timedelta(days=1)),
        ("d1@d.com", T - timedelta(seconds=1)),  # just inside
        ("d2@d.com", T - timedelta(seconds=1)),
        ("late@a.com", T),  # at the scheduled time: next week's, not counted at all
    )
    await spaces.imports(
        busy,
        ("completed", T - timedelta(days=3)),
        ("completed", start - timedelta(hours=1)),
        ("failed", T - timedelta(days=1)),
        ("completed", T + timedelta(hours=1)),
    )
    quiet, quiet_email = await spaces.new()
    await spaces.contacts(quiet, ("q@q.com", T - timedelta(days=10)))
    off, off_email = await spaces.new(digest=False)
    await spaces.contacts(off, ("o@o.com", T - timedelta(days=1)))
    orphan, _ = await spaces.new()
    await spaces.contacts(orphan, ("x@x.com", T - timedelta(days=1)))
    await delete_owner(owner_pool, orphan)
    # An earlier attempt claimed this week, sent, and died before marking it sent.
    crashed, crashed_email = await spaces.new()
    await spaces.contacts(crashed, ("y@y.com", T - timedelta(days=1)))
    await owner_pool.execute(
        "INSERT INTO digest_sends (workspace_id, week_start) VALUES ($1::uuid, $2)",
        crashed,
        week.week_start,
    )
    settings = make_settings(stack, digest_page_size=2, digest_concurrency=2)
    await OutboxSender(settings.outbox_dir, "test").send(
        Email(
            crashed_email,
            "sent before the crash",
            "t",
            "<p>t</p>",
            digest_send_key(crashed, week.week_start),
        )
    )

    # The four statistics against hand-computed values (through RLS, as the worker does).
    pool = await db.create_pool(stack.database_url, max_size=4)
    try:
        assert await gather_stats(pool, busy, week) == DigestStats(
            total_contacts=11,  # all but `late`
            new_contacts=9,  # edge, a1, a2, b1, b2, c1, c2, d1, d2
            imports_completed=1,
            top_domains=[("a.com", 3), ("b.com", 2), ("c.com", 2)],  # d.com loses the tie
        )
    finally:
        await pool.close()

    async with running_worker(client, settings, task_queue):
        result = await run_digest(client, task_queue, T)

    msgs = outbox(settings.outbox_dir)
    [digest] = to(msgs, busy_email)
    assert digest["Subject"] == "Your week in Acme <R&D>: 9 new contacts"
    body = text_of(digest)
    for line in [
        "New contacts: 9",
        "Total contacts: 11",
        "Imports completed: 1",
        "Top domains: a.com (3), b.com (2), c.com (2)",
        "week of 24 February 2025",
    ]:
        assert line in body
    html = next(p for p in digest.walk() if p.get_content_type() == "text/html")
    assert "Acme &lt;R&amp;D&gt;" in html.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert to(msgs, quiet_email) == [] and to(msgs, off_email) == []
    # The re-sent claim hit the same key: the first copy stays, no second one.
    [again] = to(msgs, crashed_email)
    assert again["Subject"] == "sent before the crash"

    assert result.week == week
    assert orphan in result.failed_workspace_ids
    assert not {busy, quiet, off, crashed} & set(result.failed_workspace_ids)
    assert result.summary.sent >= 2 and result.summary.failed >= 1
    assert result.summary.skipped_disabled >= 1 and result.summary.skipped_no_activity >= 1
    assert result.runs >= 3  # 5 workspaces, pages of 2: continue-as-new carried the totals
    assert await spaces.sends(busy) == [(week.week_start, "sent")]
    assert await spaces.sends(crashed) == [(week.week_start, "sent")]
    for wid in (quiet, off, orphan):
        assert await spaces.sends(wid) == []

    # The same week again, later in the week and into a fresh outbox: nothing is re-sent.
    settings2 = make_settings(stack, digest_page_size=50)
    async with running_worker(client, settings2, task_queue):
        second = await run_digest(client, task_queue, T + timedelta(days=2))
    assert second.week.week_start == week.week_start
    assert to(outbox(settings2.outbox_dir), busy_email) == []
    assert to(outbox(settings2.outbox_dir), crashed_email) == []
    assert second.summary.already_sent >= 2
    assert await spaces.sends(busy) == [(week.week_start, "sent")]


class AcceptThenTimeOut(FakeEmailProvider):
    """Accepts the first message to `victim`, then answers too late: the send times out."""

    def __init__(self, victim: str, delay: float) -> None:
        super().__init__()
        self.victim = victim
        self.delay = delay

    async def emails(self, request: web.Request) -> web.Response:
        first = self.victim not in {to for a in self.accepted for to in a["to"]}
        response = await super().emails(request)
        if first and self.victim in {to for a in self.accepted for to in a["to"]}:
            await asyncio.sleep(self.delay)
        return response


async def test_send_retried_after_provider_timeout_is_not_duplicated(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    at = datetime(2025, 4, 7, 8, tzinfo=UTC)
    wid, email = await spaces.new()
    await spaces.contacts(wid, ("n@n.com", at - timedelta(days=1)))
    provider = AcceptThenTimeOut(email, delay=1.5)
    async with provider:
        settings = make_settings(
            stack, email_backend="http", email_api_url=provider.url, email_timeout_seconds=0.5
        )
        async with running_worker(client, settings, task_queue):
            result = await run_digest(client, task_queue, at)
    mine = [a for a in provider.accepted if a["to"] == [email]]
    assert len(mine) == 1  # the retry carried the same key and was dropped as a duplicate
    assert provider.idempotency_keys.count(digest_send_key(wid, date(2025, 3, 31))) == 2
    assert wid not in result.failed_workspace_ids
    assert await spaces.sends(wid) == [(date(2025, 3, 31), "sent")]


async def test_naive_scheduled_time_is_refused(
    client: Client, stack: Stack, task_queue: str
) -> None:
    async with running_worker(client, make_settings(stack), task_queue):
        with pytest.raises(WorkflowFailureError) as info:
            await run_digest(client, task_queue, datetime(2025, 3, 3, 8))
    assert "has no time zone" in str(info.value.cause)


# --- the Schedule -------------------------------------------------------------------------


async def wait_actions(client: Client, schedule_id: str, count: int) -> list[dict[str, str]]:
    for _ in range(240):
        actions = (await describe(client, schedule_id))["recent_actions"]
        if len(actions) >= count:
            return actions
        await asyncio.sleep(0.25)
    raise AssertionError(f"schedule {schedule_id} never took {count} actions")


def starter(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal.address,
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_schedule_apply_is_idempotent_and_backfill_reports_each_week(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    want = DigestSchedule(
        schedule_id=f"test-digest-{tag}",
        cron="0 8 * * 1",
        task_queue=task_queue,
        workflow_id=f"digest-weekly-{tag}",
    )
    assert await apply_schedule(client, want) == ("created", [])
    first = await describe(client, want.schedule_id)
    assert first["calendars"] == ["0 8 * * 1"]
    assert first["time_zone"] == "UTC"
    assert first["overlap"] == "SKIP"
    assert first["catchup_window_seconds"] == 86400
    assert (first["workflow_type"], first["task_queue"]) == (WF_WEEKLY_DIGEST, task_queue)
    assert all(datetime.fromisoformat(t).weekday() == 0 for t in first["next_action_times"])

    assert await apply_schedule(client, want) == ("unchanged", [])
    assert await describe(client, want.schedule_id) == first  # not even last_updated_at

    moved = dataclasses.replace(want, cron="30 9 * * 2")
    assert await apply_schedule(client, moved) == ("updated", ["spec"])
    assert (await describe(client, want.schedule_id))["calendars"] == ["30 9 * * 2"]
    # Paused by an operator: applying restores the spec but keeps the pause.
    await set_paused(client, want.schedule_id, True, "maintenance")
    assert await apply_schedule(client, want) == ("updated", ["spec"])
    shown = await describe(client, want.schedule_id)
    assert shown["paused"] and shown["calendars"] == ["0 8 * * 1"]

    # Three past Mondays, each with its own number of new contacts in its own window.
    wid, email = await spaces.new()
    mondays = [datetime(2025, 1, d, 8, tzinfo=UTC) for d in (6, 13, 20)]
    for n, monday in enumerate(mondays, start=1):
        await spaces.contacts(
            wid, *((f"w{n}-{i}@week{n}.com", monday - timedelta(days=3)) for i in range(n))
        )
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue):
        # Backfill runs even while the schedule is paused.
        await backfill(client, want.schedule_id, date(2025, 1, 6), date(2025, 1, 20))
        actions = await wait_actions(client, want.schedule_id, 3)
        results = [
            await client.get_workflow_handle(
                a["workflow_id"], result_type=WeeklyDigestResult
            ).result()
            for a in actions
        ]
    assert [a["workflow_id"] for a in actions] == [
        f"digest-weekly-{tag}-2025-01-{d:02d}T08:00:00Z" for d in (6, 13, 20)
    ]
    assert [r.week.window_end for r in results] == mondays
    subjects = sorted(m["Subject"] for m in to(outbox(settings.outbox_dir), email))
    assert subjects == [
        "Your week in Acme <R&D>: 1 new contact",
        "Your week in Acme <R&D>: 2 new contacts",
        "Your week in Acme <R&D>: 3 new contacts",
    ]
    assert [w for w, _ in await spaces.sends(wid)] == [
        date(2024, 12, 30),
        date(2025, 1, 6),
        date(2025, 1, 13),
    ]

    # The CLI sees the same schedule, applies nothing new, refuses bad input clearly.
    env_args = ("schedule", "--schedule-id", want.schedule_id)
    show = await asyncio.to_thread(starter, stack, *env_args, "show", "--json")
    assert show.returncode == 0, show.stderr
    data = json.loads(show.stdout)
    assert data["paused"] is True and len(data["recent_actions"]) == 3
    bad = await asyncio.to_thread(
        starter, stack, *env_args, "backfill", "--from", "2025-01-20", "--to", "2025-01-06"
    )
    assert bad.returncode == 2 and "before --from" in bad.stderr
    missing = await asyncio.to_thread(starter, stack, "schedule", "--schedule-id", "nope", "show")
    assert missing.returncode == 2 and "does not exist" in missing.stderr, missing.stderr
    await client.get_schedule_handle(want.schedule_id).delete()


async def test_trigger_reports_on_the_seven_days_before_it(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    """`schedule trigger` through the CLI: the run's week is its scheduled (trigger) time."""
    tag = uuid.uuid4().hex[:8]
    want = DigestSchedule(
        schedule_id=f"test-digest-{tag}",
        cron="0 8 * * 1",
        task_queue=task_queue,
        workflow_id=f"digest-weekly-{tag}",
    )
    await apply_schedule(client, want)
    wid, email = await spaces.new()
    now = datetime.now(UTC)
    await spaces.contacts(wid, ("fresh@new.com", now - timedelta(hours=1)))
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue):
        out = await asyncio.to_thread(
            starter, stack, "schedule", "--schedule-id", want.schedule_id, "trigger"
        )
        assert out.returncode == 0, out.stderr
        [action] = await wait_actions(client, want.schedule_id, 1)
        result = await client.get_workflow_handle(
            action["workflow_id"], result_type=WeeklyDigestResult
        ).result()
    # The search attribute keeps whole seconds of the trigger time.
    scheduled_at = datetime.fromisoformat(action["scheduled_at"])
    assert abs(result.week.window_end - scheduled_at) < timedelta(seconds=1)
    assert result.week == digest_week(result.week.window_end)
    [msg] = to(outbox(settings.outbox_dir), email)
    assert "New contacts: 1" in text_of(msg)
    await client.get_schedule_handle(want.schedule_id).delete()
