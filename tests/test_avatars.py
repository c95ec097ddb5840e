"""The avatars job (issue 25) on real servers, with the Gravatar stand-in of tests/fakes.py.

Through real imports: exact avatars with addresses repeated across imports, a stale
answer never written, the import's cancel. Some tests start from contacts an import owes
a lookup (as its upsert leaves them) and run EnrichAvatars as the import starts it, to
reach one fault at a time: the rate with two workers, 429 and outage, the job's cancel.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from folksjobs.events import dispatch, parse_event
from folksjobs.models import (
    WF_ENRICH_AVATARS,
    AvatarProgress,
    EnrichAvatarsInput,
    ImportProgress,
    avatars_workflow_id,
)
from folksjobs.notify.gravatar import _retry_after_seconds, email_hash
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.fakes import FakeGravatar
from tests.importing import avatars_done, csv_bytes, import_bytes, upload


def tag() -> str:
    """Addresses of their own per test: the Gravatar cache is the session's Redis."""
    return uuid.uuid4().hex[:8]


FAST = {
    "gravatar_enabled": True,
    "gravatar_rate_per_second": 200.0,
    "gravatar_batch": 10,
    "gravatar_lanes": 3,
    "gravatar_poll_seconds": 0.2,
    "gravatar_breaker_failures": 3,
    "gravatar_breaker_seconds": 1.0,
    "gravatar_timeout_seconds": 1.0,
}


def grav_settings(stack: Stack, queue: str, grav: FakeGravatar, **kw: Any) -> Settings:
    return make_settings(
        stack,
        temporal_task_queue=queue,
        gravatar_base_url=f"{grav.url}/avatar",
        **{**FAST, **kw},
    )


async def owed_import(
    owner: asyncpg.Pool, tenant: Tenant, emails: list[str], status: str = "completed"
) -> str:
    """An import record and its contacts, each owing its lookup to it (as its upsert
    leaves them); `status` processing: the import is still committing rows."""
    import_id = str(uuid.uuid4())
    await owner.execute(
        "INSERT INTO imports (id, workspace_id, user_id, status, file_name, blob_key,"
        " file_bytes, encoding, delimiter, sep_line, headers, column_mapping, total_rows)"
        " VALUES ($1::uuid, $2::uuid, $3::uuid, $4, 'f.csv', 'k', 1, 'utf-8', ',', false,"
        " '[\"email\"]', '[\"email\"]', $5)",
        import_id, tenant.workspace_id, tenant.user_id, status, len(emails),
    )  # fmt: skip
    await own(owner, tenant.workspace_id, import_id, emails)
    return import_id


async def own(owner: asyncpg.Pool, workspace_id: str, import_id: str, emails: list[str]) -> None:
    await owner.execute(
        "INSERT INTO contacts (workspace_id, email, avatar_pending)"
        " SELECT $1::uuid, e, $2::uuid FROM unnest($3::text[]) e"
        " ON CONFLICT (workspace_id, email) DO UPDATE SET avatar_pending = EXCLUDED.avatar_pending",
        workspace_id, import_id, emails,
    )  # fmt: skip


async def start(client: Client, queue: str, tenant: Tenant, import_id: str) -> WorkflowHandle:
    return await client.start_workflow(
        WF_ENRICH_AVATARS,
        EnrichAvatarsInput(import_id=import_id, workspace_id=tenant.workspace_id),
        id=avatars_workflow_id(import_id),
        task_queue=queue,
        result_type=AvatarProgress,
    )


async def avatars(owner: asyncpg.Pool, workspace_id: str) -> dict[str, tuple[str | None, Any]]:
    rows = await owner.fetch(
        "SELECT email, avatar_url, avatar_pending FROM contacts WHERE workspace_id = $1::uuid",
        workspace_id,
    )
    return {r["email"]: (r["avatar_url"], r["avatar_pending"]) for r in rows}


def url(grav: FakeGravatar, email: str) -> str:
    return f"{grav.url}/avatar/{email_hash(email)}"


async def new_tenant(owner: asyncpg.Pool) -> Tenant:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    uid = await seed.create_user(owner, email, "Owner")
    return Tenant(uid, await seed.create_workspace(owner, uid, "W"), email)


async def test_exact_avatars_asked_once_across_overlapping_jobs(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Two workspaces' imports share 30 addresses and run at once: every address is asked
    once (the claim, then the cache), every contact gets exactly its avatar."""
    a, b = await new_tenant(owner_pool), await new_tenant(owner_pool)
    emails = [f"p{i}.{tag()}@example.com" for i in range(90)]
    known = {email_hash(e) for e in emails[::7]}
    async with FakeGravatar(known=known, latency=0.2) as grav:
        settings = grav_settings(stack, task_queue, grav)
        async with running_worker(client, settings, task_queue):
            ia = await owed_import(owner_pool, a, emails[:60])
            ib = await owed_import(owner_pool, b, emails[30:])
            ha, hb = await start(client, task_queue, a, ia), await start(client, task_queue, b, ib)
            ra, rb = await asyncio.gather(ha.result(), hb.result())
    assert (ra.done, ra.pending, rb.done, rb.pending) == (60, 0, 60, 0)
    assert sorted(grav.requests) == sorted(email_hash(e) for e in emails)
    for t, part in ((a, emails[:60]), (b, emails[30:])):
        got = await avatars(owner_pool, t.workspace_id)
        want = {e: (url(grav, e) if email_hash(e) in known else None, None) for e in part}
        assert got == want


async def test_a_stale_answer_is_never_written(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Ann is imported and her lookup (she has an avatar) is in flight when her contact's
    email changes (the CRM's edit) and a second import brings the new address, updating
    that same contact: the late answer, for the old email, is dropped; the contact keeps
    the new address's answer (none)."""
    old, new = f"ann.{tag()}@example.com", f"ann.new.{tag()}@example.com"
    held = asyncio.Event()
    async with FakeGravatar(known={email_hash(old)}) as grav:
        grav.hold[email_hash(old)] = held
        settings = grav_settings(stack, task_queue, grav)
        async with running_worker(client, settings, task_queue) as services:
            ws, user = tenant.workspace_id, tenant.user_id
            file = csv_bytes([["email"], [old]])
            first, _ = await import_bytes(client, services, settings, ws, user, file)
            await grav.until(lambda: email_hash(old) in grav.requests)
            await owner_pool.execute(
                "UPDATE contacts SET email = $2 WHERE workspace_id = $1::uuid AND email = $3",
                tenant.workspace_id, new, old,
            )  # fmt: skip
            file = csv_bytes([["email"], [new]])
            second, result = await import_bytes(client, services, settings, ws, user, file)
            held.set()
            r1 = await avatars_done(client, first.import_id)
            r2 = await avatars_done(client, second.import_id)
    assert result["updated"] == 1  # the same contact, re-imported with its new email
    assert (r1.done, r2.done) == (0, 1)
    assert await avatars(owner_pool, tenant.workspace_id) == {new: (None, None)}


async def test_imports_with_repeats_get_exact_avatars_asking_each_address_once(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Two files sharing addresses, imported at once, then the first again: every contact
    has exactly its avatar, Gravatar was asked once per address, and the re-import (in the
    cache's TTL) asked nothing. The imports complete without waiting for any lookup."""
    emails = [f"x{i}.{tag()}@example.com" for i in range(60)]
    known = {email_hash(e) for e in emails[::4]}
    one = csv_bytes([["email"], *([e.upper()] for e in emails[:40])])
    two = csv_bytes([["email"], *([e] for e in emails[20:])])
    async with FakeGravatar(known=known, latency=0.1) as grav:
        settings = grav_settings(stack, task_queue, grav, import_chunk_rows=10)
        async with running_worker(client, settings, task_queue) as services:
            (a, ra), (b, rb) = await asyncio.gather(
                import_bytes(client, services, settings, tenant.workspace_id, tenant.user_id, one),
                import_bytes(client, services, settings, tenant.workspace_id, tenant.user_id, two),
            )
            await asyncio.gather(
                avatars_done(client, a.import_id), avatars_done(client, b.import_id)
            )
            asked = sorted(grav.requests)
            c, rc = await import_bytes(client, services, settings, tenant.workspace_id,
                                       tenant.user_id, one)  # fmt: skip
            again = await avatars_done(client, c.import_id)
    assert ra["avatars"] is not None and rb["avatars"] is not None
    assert asked == sorted(email_hash(e) for e in emails)
    assert len(grav.requests) == len(asked) and again.asked == 0
    assert rc["avatars"]["pending"] + rc["avatars"]["done"] == 40
    want = {e: (url(grav, e) if email_hash(e) in known else None, None) for e in emails}
    assert await avatars(owner_pool, tenant.workspace_id) == want


async def test_cancelling_the_import_cancels_its_avatars(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """While the import runs, its progress shows every committed contact's avatar pending
    (nothing is asked before the rows are all in); a cancel of the import cancels the
    avatars job, and nothing stays owed."""
    rows = [["email"], *([f"k{i}.{tag()}@example.com"] for i in range(120))]
    async with FakeGravatar() as grav:
        settings = grav_settings(stack, task_queue, grav, import_chunk_rows=2,
                                 import_parallel_chunks=1)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(rows))  # fmt: skip
            handle = await confirm_import(client, services.pool, settings, tenant.workspace_id,
                                          up.import_id)  # fmt: skip
            job = client.get_workflow_handle(avatars_workflow_id(up.import_id))
            progress = functools.partial(handle.query, "progress", result_type=ImportProgress)
            while (p := await progress()).chunks_done < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
            with pytest.raises(WorkflowFailureError):
                await job.result()
            assert (await job.describe()).status == WorkflowExecutionStatus.CANCELED
    assert p.stage == "process-batch" and p.avatars is not None
    assert p.avatars.done == 0 and p.avatars.pending == p.counts.inserted > 0
    assert not grav.requests
    got = await avatars(owner_pool, tenant.workspace_id)
    assert got and all(pending is None for _, pending in got.values())


async def test_rate_holds_across_two_workers(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """GRAVATAR_RATE_PER_SECOND is the cluster's: two workers serving the avatars queue
    together stay under it (the server dispatches the queue's activities)."""
    rate, n = 25.0, 100
    emails = [f"r{i}.{tag()}@example.com" for i in range(n)]
    async with FakeGravatar(latency=0.05) as grav:
        settings = grav_settings(stack, task_queue, grav, gravatar_rate_per_second=rate,
                                 gravatar_batch=5, gravatar_lanes=4)  # fmt: skip
        async with AsyncExitStack() as workers:
            # Two workers: two connections, as two processes would have.
            second = await Client.connect(
                stack.temporal.address, data_converter=client.data_converter, identity="second"
            )
            for c in (client, second):
                await workers.enter_async_context(running_worker(c, settings, task_queue))
            iid = await owed_import(owner_pool, tenant, emails)
            handle = await start(client, task_queue, tenant, iid)
            result = await handle.result()
    assert result.done == n and len(grav.requests) == n
    served = {
        e.activity_task_started_event_attributes.identity
        async for e in handle.fetch_history_events()
        if e.HasField("activity_task_started_event_attributes")
    }
    assert len(served) == 2, served
    # The server's token bucket lets one second's worth through at once (a burst of
    # rate/batch activities); past that, the two workers together never beat the rate.
    span = grav.times[-1] - grav.times[0]
    burst = int(rate) + 5
    assert span >= (n - burst) / (rate * 1.1), f"{n} requests in {span:.2f} s"
    assert grav.max_per_window(1.0) <= 2 * rate + 5


async def test_429_outage_and_breaker_wait_and_resume(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """A 429 (Retry-After 1) and then an outage (503s until the breaker opens): the job
    waits and resumes, never caches a failure as a miss, and ends with exact avatars."""
    emails = [f"f{i}.{tag()}@example.com" for i in range(40)]
    known = {email_hash(e) for e in emails[::3]}
    async with FakeGravatar(known=known) as grav:
        grav.throttle, grav.retry_after = 2, "1"
        settings = grav_settings(stack, task_queue, grav)
        async with running_worker(client, settings, task_queue):
            iid = await owed_import(owner_pool, tenant, emails)
            handle = await start(client, task_queue, tenant, iid)
            await grav.until(lambda: grav.throttle == 0)
            grav.outage = True
            await asyncio.sleep(1.5)  # past the Retry-After, into the breaker
            progress = await handle.query("progress", result_type=AvatarProgress)
            grav.outage = False
            result = await handle.result()
    assert progress.pending > 0
    assert (result.done, result.pending) == (40, 0)
    got = await avatars(owner_pool, tenant.workspace_id)
    assert got == {e: (url(grav, e) if email_hash(e) in known else None, None) for e in emails}


async def test_cancel_drops_what_is_owed(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    emails = [f"c{i}.{tag()}@example.com" for i in range(30)]
    async with FakeGravatar(latency=0.3) as grav:
        settings = grav_settings(stack, task_queue, grav, gravatar_rate_per_second=10.0,
                                 gravatar_batch=2, gravatar_lanes=1)  # fmt: skip
        async with running_worker(client, settings, task_queue):
            iid = await owed_import(owner_pool, tenant, emails)
            handle = await start(client, task_queue, tenant, iid)
            await grav.until(lambda: bool(grav.requests))
            await handle.cancel()
            with pytest.raises(WorkflowFailureError):
                await handle.result()
    got = await avatars(owner_pool, tenant.workspace_id)
    assert all(pending is None for _, pending in got.values())
    assert len(grav.requests) < len(emails)


async def test_deleting_the_workspace_cancels_its_avatars_job(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """An avatars job outlives its import; the workspace's deletion still stops it before
    the rows go, and names it among the jobs it cancelled."""
    t = await new_tenant(owner_pool)
    emails = [f"d{i}.{tag()}@example.com" for i in range(30)]
    async with FakeGravatar(latency=0.3) as grav:
        settings = grav_settings(stack, task_queue, grav, gravatar_rate_per_second=10.0,
                                 gravatar_batch=2, gravatar_lanes=1)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            iid = await owed_import(owner_pool, t, emails)
            handle = await start(client, task_queue, t, iid)
            await grav.until(lambda: bool(grav.requests))
            event = parse_event("workspace/deleted", {"workspaceId": t.workspace_id,
                                                      "userId": t.user_id})  # fmt: skip
            d = await dispatch(client, settings, event, pool=services.pool)
            result = await client.get_workflow_handle(d.workflow_id).result()
            job = await handle.describe()
    assert job.status == WorkflowExecutionStatus.CANCELED
    assert result["status"] == "deleted" and result["jobs_cancelled"] == 1
    assert await avatars(owner_pool, t.workspace_id) == {}
    assert len(grav.requests) < len(emails)


async def test_import_gone_or_closed_ends_the_job(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Nothing owed and the import no longer processing: the job ends at once."""
    async with FakeGravatar() as grav:
        settings = grav_settings(stack, task_queue, grav)
        async with running_worker(client, settings, task_queue):
            iid = await owed_import(owner_pool, tenant, [])
            result = await (await start(client, task_queue, tenant, iid)).result()
    assert (result.done, result.pending, result.asked) == (0, 0, 0)
    assert not grav.requests


async def test_a_worker_lost_mid_lookup_loses_nothing(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """The worker holding a lookup stops mid-request (its answer never comes back): the
    contacts it was asking about stay owed, and the next worker asks again and finishes
    with every avatar exact."""
    emails = [f"l{i}.{tag()}@example.com" for i in range(12)]
    known = {email_hash(e) for e in emails[::2]}
    stuck = asyncio.Event()
    async with FakeGravatar(known=known) as grav:
        grav.hold[email_hash(emails[0])] = stuck
        settings = grav_settings(stack, task_queue, grav, gravatar_timeout_seconds=30.0,
                                 worker_graceful_shutdown_seconds=0.1)  # fmt: skip
        iid = await owed_import(owner_pool, tenant, emails)
        async with running_worker(client, settings, task_queue):
            handle = await start(client, task_queue, tenant, iid)
            await grav.until(lambda: email_hash(emails[0]) in grav.requests)
        grav.hold.clear()
        stuck.set()
        async with running_worker(client, settings, task_queue):
            result = await handle.result()
    assert result.pending == 0
    assert grav.requests.count(email_hash(emails[0])) >= 2  # asked again
    want = {e: (url(grav, e) if email_hash(e) in known else None, None) for e in emails}
    assert await avatars(owner_pool, tenant.workspace_id) == want


def test_retry_after_in_seconds_or_as_a_date() -> None:
    from email.utils import format_datetime

    assert _retry_after_seconds("7", 60.0) == 7.0
    assert _retry_after_seconds(None, 60.0) == 60.0
    assert _retry_after_seconds("soon", 60.0) == 60.0
    assert _retry_after_seconds("999999", 60.0) == 3600.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after_seconds(later, 60.0) <= 31
