"""Email that arrives: outages and rate limits delay a message, never lose it or send it twice.

Against folksjobs.devtools.mailstandin (a Resend-style provider on loopback: 429 with
Retry-After, Idempotency-Key, 503 outages, a timeout after accepting, 422), with the
windows and backoffs scaled down to seconds.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import asyncpg
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.delivery import delivery
from folksjobs import errors
from folksjobs.devtools import seed
from folksjobs.devtools.mailstandin import MailStandIn
from folksjobs.infra.temporal import connect
from folksjobs.models import (
    WF_SEND_WELCOME,
    WF_WEEKLY_DIGEST,
    SendWelcomeInput,
    WeeklyDigestInput,
    WeeklyDigestResult,
    digest_send_key,
)
from folksjobs.notify.ai import Summarizer
from folksjobs.notify.mailer import retry_after_seconds
from folksjobs.notify.retry import EMAIL_RETRY
from folksjobs.settings import ROOT, Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.fakes import FakeAnthropic
from tests.importing import csv_bytes, import_bytes, import_row
from tests.test_digest import Workspaces

# Short everything: a provider's "wait" is obeyed as given; our own backoff and holds are
# scaled down so each case takes seconds.
FAST = {
    "email_backend": "http",
    "email_retry_max_seconds": 0.5,
    "email_outage_hold_seconds": 0.2,
    "email_max_wait_seconds": 5.0,
    "email_timeout_seconds": 2.0,
}


def http_settings(stack: Stack, provider: MailStandIn, **kw: Any) -> Settings:
    return make_settings(stack, email_api_url=provider.url, **{**FAST, **kw})


@pytest.fixture
async def spaces(owner_pool: asyncpg.Pool) -> AsyncIterator[Workspaces]:
    ws = Workspaces(owner_pool)
    yield ws
    await owner_pool.execute(
        "UPDATE workspaces SET active = false WHERE id = ANY($1::uuid[])", ws.ids
    )


async def busy_workspaces(spaces: Workspaces, n: int, at: datetime) -> dict[str, str]:
    """n workspaces with a new contact in the week before `at`: {workspace id: owner}."""
    out = {}
    for _ in range(n):
        wid, email = await spaces.new()
        await spaces.contacts(wid, (f"c-{uuid.uuid4().hex[:6]}@x.com", at - timedelta(days=1)))
        out[wid] = email
    return out


async def run_digest(client: Client, task_queue: str, at: datetime) -> WeeklyDigestResult:
    return await client.execute_workflow(
        WF_WEEKLY_DIGEST,
        WeeklyDigestInput(scheduled_for=at),
        id=f"digest-test-{uuid.uuid4().hex[:10]}",
        task_queue=task_queue,
        result_type=WeeklyDigestResult,
    )


async def new_users(owner: asyncpg.Pool, n: int) -> dict[str, str]:
    users = {}
    for _ in range(n):
        email = f"new-{uuid.uuid4().hex[:10]}@example.com"
        users[await seed.create_user(owner, email, "New User")] = email
    return users


async def welcome(client: Client, task_queue: str, user_id: str) -> Any:
    return await client.execute_workflow(
        WF_SEND_WELCOME,
        SendWelcomeInput(user_id=user_id),
        id=f"welcome-{user_id}-{uuid.uuid4().hex[:4]}",
        task_queue=task_queue,
    )


async def test_outage_in_the_middle_of_a_digest_delays_it_and_sends_each_once(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    at = datetime.now(UTC)
    owners = await busy_workspaces(spaces, 6, at)
    async with MailStandIn(rate=50, outage_after=(2, 3.0)) as provider:
        settings = http_settings(stack, provider, email_rate_per_second=50, digest_concurrency=2)
        async with running_worker(client, settings, task_queue):
            handle = await client.start_workflow(
                WF_WEEKLY_DIGEST,
                WeeklyDigestInput(scheduled_for=at),
                id=f"digest-test-{uuid.uuid4().hex[:10]}",
                task_queue=task_queue,
                result_type=WeeklyDigestResult,
            )
            finished = asyncio.ensure_future(handle.result())
            waiting_seen = 0
            while not finished.done():
                progress = await handle.query("progress", result_type=WeeklyDigestResult)
                waiting_seen = max(waiting_seen, progress.waiting if progress else 0)
                await asyncio.wait({finished}, timeout=0.2)
            result = await finished
    assert provider.statuses.get(503, 0) >= 1
    assert waiting_seen >= 1  # the progress query (and the UI's details) counted them
    assert result.waiting == 0
    assert result.summary.sent >= 6
    assert not set(owners) & set(result.failed_workspace_ids + result.given_up_workspace_ids)
    for wid, email in owners.items():
        assert provider.count_to(email) == 1
        [d] = [d for d in provider.delivered if d.to == email]
        assert d.key == digest_send_key(wid, result.week.week_start)
        assert await spaces.sends(wid) == [(result.week.week_start, "sent")]


# Two workers: two processes in production; here two Temporal clients (one client holds one
# worker a queue), each with its own services, sharing only Redis and the provider.


async def test_rate_limit_429_with_two_workers_sends_each_welcome_once(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    users = await new_users(owner_pool, 8)
    # Our rate above the provider's 2/s, as if EMAIL_RATE_PER_SECOND were set too high:
    # its 429s and their Retry-After must hold both workers back.
    async with MailStandIn(rate=2) as provider:
        settings = http_settings(stack, provider, email_rate_per_second=4)
        async with (
            running_worker(client, settings, task_queue),
            running_worker(await connect(settings), settings, task_queue),
        ):
            results = await asyncio.gather(*(welcome(client, task_queue, u) for u in users))
    assert all(r["backend"] == "http" for r in results)
    assert provider.statuses.get(429, 0) >= 1
    for email in users.values():
        assert provider.count_to(email) == 1


async def test_cluster_rate_keeps_two_workers_under_the_providers_limit(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    users = await new_users(owner_pool, 6)
    async with MailStandIn(rate=2) as provider:
        # A tenth under the provider's limit, as an operator would set it: a send the
        # loaded machine delays must not bunch up with the next one.
        settings = http_settings(stack, provider, email_rate_per_second=1.8)
        async with (
            running_worker(client, settings, task_queue),
            running_worker(await connect(settings), settings, task_queue),
        ):
            await asyncio.gather(*(welcome(client, task_queue, u) for u in users))
    for email in users.values():
        assert provider.count_to(email) == 1
    # One schedule for the two workers: the provider's bucket (2 a second) was never
    # emptied, whereas each worker pacing alone would send 3.6 a second.
    assert provider.statuses.get(429, 0) <= 1


async def test_timeout_after_the_provider_accepted_is_not_sent_again(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    [(user, email)] = (await new_users(owner_pool, 1)).items()
    async with MailStandIn(rate=50, slow_accepts=1, slow_seconds=2.0) as provider:
        settings = http_settings(stack, provider, email_timeout_seconds=0.5)
        async with running_worker(client, settings, task_queue):
            await welcome(client, task_queue, user)
    assert len(provider.times) >= 2  # the answer was lost, the send was tried again
    assert provider.count_to(email) == 1


async def test_422_fails_at_once_with_the_providers_reason(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    [(user, email)] = (await new_users(owner_pool, 1)).items()
    async with MailStandIn(rate=50, invalid={email}) as provider:
        settings = http_settings(stack, provider)
        async with running_worker(client, settings, task_queue):
            with pytest.raises(WorkflowFailureError) as info:
                await welcome(client, task_queue, user)
    assert len(provider.times) == 1
    assert errors.failed_with(info.value.cause, errors.EMAIL_PERMANENT_FAILURE)
    assert f"{email} is not a valid address" in errors.root_message(info.value)


async def test_welcome_gives_up_when_its_window_closes(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    [user] = await new_users(owner_pool, 1)
    async with MailStandIn(rate=50) as provider:
        provider.outage(3600)
        settings = http_settings(stack, provider, email_welcome_window_seconds=2)
        async with running_worker(client, settings, task_queue):
            with pytest.raises(WorkflowFailureError) as info:
                await welcome(client, task_queue, user)
    assert len(provider.times) >= 2
    assert errors.failed_with(info.value.cause, errors.EMAIL_GIVEN_UP)
    assert "email provider answered 503" in errors.root_message(info.value)


async def test_digest_whose_window_closes_reports_what_it_gave_up(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    at = datetime.now(UTC)
    owners = await busy_workspaces(spaces, 2, at)
    async with MailStandIn(rate=50) as provider:
        provider.outage(3600)
        # The next digest is due 7 days after `at`: a margin of 7 days less 2 s leaves the
        # digest 2 s to get through.
        margin = timedelta(days=7).total_seconds() - 2
        settings = http_settings(
            stack,
            provider,
            email_digest_margin_seconds=margin,
            email_notification_window_seconds=1,  # the floor for a late run: not this one
        )
        async with running_worker(client, settings, task_queue):
            result = await run_digest(client, task_queue, at)
    # Other tests' workspaces with contacts this week are visited too: at least these.
    assert provider.delivered == []
    assert result.summary.given_up >= 2 and result.summary.sent == 0
    assert set(owners) <= set(result.given_up_workspace_ids)
    assert not set(owners) & set(result.failed_workspace_ids)


async def test_starter_digest_wait_exits_1_naming_what_it_gave_up(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    # A past week (a backfill, as `--for` allows): its window is the notification window
    # from the first try, 1 s here; no other test runs the digest for this week.
    at = datetime(2024, 6, 3, 8, tzinfo=UTC)
    owners = await busy_workspaces(spaces, 2, at)
    async with MailStandIn(rate=50) as provider:
        provider.outage(3600)
        settings = http_settings(stack, provider, email_notification_window_seconds=1)
        async with running_worker(client, settings, task_queue):
            out = await asyncio.to_thread(
                starter, stack, task_queue, "digest", "--for", at.isoformat(), "--wait"
            )
    assert out.returncode == 1, out.stderr
    # Other tests' workspaces may have contacts in that week too: at least these two.
    given_up = re.search(r"given_up=(\d+)", out.stdout)
    assert given_up and int(given_up.group(1)) >= 2, out.stdout
    for wid in owners:
        assert wid in out.stdout


def starter(stack: Stack, task_queue: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.temporal.address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "DATABASE_URL": stack.database_url,
        "REDIS_URL": stack.redis_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_digest_through_the_batch_endpoint_sends_each_once(
    client: Client, stack: Stack, spaces: Workspaces, task_queue: str
) -> None:
    at = datetime.now(UTC)
    owners = await busy_workspaces(spaces, 5, at)
    quiet, _ = await spaces.new()  # nothing new: skipped, not in any batch's request
    # The first batch is accepted and its answer lost: its retry carries the same key.
    async with MailStandIn(rate=50, slow_accepts=1, slow_seconds=2.0) as provider:
        settings = http_settings(stack, provider, email_batch_size=3, email_timeout_seconds=0.5)
        async with running_worker(client, settings, task_queue):
            result = await run_digest(client, task_queue, at)
    assert result.summary.sent >= 5 and result.summary.skipped_no_activity >= 1
    for email in owners.values():
        [d] = [d for d in provider.delivered if d.to == email]
        assert d.key.startswith("batch-")  # through POST /emails/batch
    assert await spaces.sends(quiet) == []


async def test_import_completes_while_its_email_waits_out_an_outage(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    rows = [["email"], *([f"w{i}@example.com"] for i in range(5))]
    async with MailStandIn(rate=50, down_for_first=6) as provider:
        settings = http_settings(stack, provider, temporal_task_queue=task_queue)
        async with running_worker(client, settings, task_queue) as services:
            up, result = await import_bytes(
                client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
            )
    assert result["status"] == "completed" and result["inserted"] == 5
    assert provider.statuses[503] == 6  # its email waited (past finalize's 4 attempts)
    assert provider.count_to(tenant.email) == 1  # ...and went out once
    assert (await import_row(owner_pool, up.import_id))["status"] == "completed"


# --- the job's own failures keep the spec's attempts --------------------------------


@activity.defn(name="always-broken")
async def always_broken() -> None:
    deadline = datetime.now(UTC) + timedelta(hours=1)
    async with delivery("welcome", deadline, attempts=3, retry_max=0.1):
        raise RuntimeError(f"database down (attempt {activity.info().attempt})")


@workflow.defn(name="BrokenEmailJob", sandboxed=False)
class BrokenEmailJob:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            always_broken, start_to_close_timeout=timedelta(seconds=10), retry_policy=EMAIL_RETRY
        )


async def test_own_failures_end_after_the_specs_attempts(client: Client, task_queue: str) -> None:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BrokenEmailJob],
        activities=[always_broken],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                BrokenEmailJob.run, id=f"broken-{uuid.uuid4().hex[:8]}", task_queue=task_queue
            )
    message = str(info.value.cause.__cause__)  # the activity's ApplicationError
    assert "(attempt 3) (3 of 3 attempts failed)" in message, message


# --- the AI summary: 10 s including the wait for a slot -----------------------------


async def test_ai_summary_limit_includes_the_wait_for_a_slot(stack: Stack) -> None:
    async with FakeAnthropic(hang=True) as fake:
        settings = make_settings(
            stack,
            anthropic_api_key="k",
            anthropic_base_url=fake.url,
            ai_timeout_seconds=1.0,
            ai_concurrency=1,
        )
        ai = Summarizer(settings)
        try:
            t0 = time.monotonic()
            texts = await asyncio.gather(*(ai.summarize(10, 5, 3, 1, 1) for _ in range(3)))
            took = time.monotonic() - t0
        finally:
            await ai.close()
    assert all(t.startswith("Processed 10 rows") for t in texts)
    # Each waited its slot inside its own limit: three calls in one slot end together
    # at about one limit, where a wait outside it would take three.
    assert took < 2.5


def test_retry_after_in_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("-4") == 0.0
    when = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 < (retry_after_seconds(format_datetime(when, usegmt=True)) or 0) <= 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
