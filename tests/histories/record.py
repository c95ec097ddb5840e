"""Record the replay corpus: every workflow through its real paths, histories saved as JSON.

    python -m tests.histories.record                 # all scenarios, into tests/histories/
    python -m tests.histories.record --only import-cancel --out /tmp/h

Starts its own dev stack (Temporal dev server, embedded PostgreSQL, Valkey) in a temporary
directory, runs each scenario with the real worker and activities, follows continue-as-new
from the first run to the last, and writes one file per run plus `index.json` (file ->
workflow id, type, scenario, the commit it was recorded on). `tests/test_replay.py`
replays them all against today's workflow code.

Record again only to ADD histories. A file recorded before a workflow change is the proof
that the change is replay-safe, so existing files are never rewritten (--overwrite does, on
purpose). After a workflow change, record its paths again beside the old files:

    python -m tests.histories.record --only import-continue-as-new --suffix chunks-as-slots-free
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from folksjobs.devtools.devstack import EmbeddedPostgres, EmbeddedValkey, TemporalDevServer
from folksjobs.devtools.mailstandin import MailStandIn
from folksjobs.events import dispatch, parse_event
from folksjobs.exports import repo as exports
from folksjobs.infra import db
from folksjobs.infra.temporal import connect
from folksjobs.models import (
    WF_DISCARD_STALE_UPLOADS,
    WF_EXPIRE_FILES,
    WF_PROCESS_CSV,
    WF_PROCESS_EXPORT,
    WF_SEND_WELCOME,
    WF_WEEKLY_DIGEST,
    DiscardStaleUploadsInput,
    ExpireFilesInput,
    ProcessCsvInput,
    ProcessExportInput,
    SendWelcomeInput,
    WeeklyDigestInput,
    avatars_workflow_id,
    export_workflow_id,
)
from folksjobs.notify.gravatar import email_hash
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.fakes import FakeEmailProvider, FakeGravatar
from tests.importing import avatars_done, csv_bytes, upload

HERE = Path(__file__).resolve().parent
INDEX = "index.json"


@dataclass
class Recorded:
    """A workflow id to save, and which of its runs: all of them, following continue-as-new."""

    workflow_id: str
    scenario: str


@dataclass
class Ctx:
    client: Client
    stack: Stack
    owner: asyncpg.Pool

    def settings(self, **kw: Any) -> Settings:
        return make_settings(self.stack, **kw)

    async def tenant(self) -> Tenant:
        email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
        uid = await seed.create_user(self.owner, email, "Replay Owner")
        wid = await seed.create_workspace(self.owner, uid, "Replay workspace")
        return Tenant(uid, wid, email)


Scenario = Callable[[Ctx, str], Awaitable[list[Recorded]]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def add(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return add


def _emails(prefix: str, n: int) -> list[list[str]]:
    return [["email", "first_name"]] + [[f"{prefix}{i}@example.com", f"N{i}"] for i in range(n)]


async def _import(
    ctx: Ctx, tq: str, rows: list[list[str]], **settings_kw: Any
) -> tuple[str, Tenant, Any]:
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq, **settings_kw)
    async with running_worker(ctx.client, settings, tq) as services:
        up = await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(rows))
        handle = await _confirm(ctx, services, settings, t, up)
        result = await handle.result()
    return handle.id, t, result


async def _confirm(ctx: Ctx, services: Any, settings: Settings, t: Tenant, up: Any) -> Any:
    return await confirm_import(ctx.client, services.pool, settings, t.workspace_id, up.import_id)


# --- process-csv -----------------------------------------------------------------------


@scenario("import-success")
async def import_success(ctx: Ctx, tq: str) -> list[Recorded]:
    rows = [*_emails("s", 7), ["not-an-email", "X"], ["s1@example.com", "Dup"]]
    wid, t, _ = await _import(ctx, tq, rows, import_chunk_rows=3, import_parallel_chunks=2)
    return [
        Recorded(wid, "import-success"),
        Recorded(f"import-gate-{t.workspace_id}", "import-gate"),
    ]


@scenario("import-small")
async def import_small(ctx: Ctx, tq: str) -> list[Recorded]:
    """A file of one chunk, under IMPORT_INLINE_MAX_ROWS: one import-small activity."""
    rows = [*_emails("m", 7), ["not-an-email", "X"], ["m1@example.com", "Dup"]]
    wid, t, _ = await _import(ctx, tq, rows)
    return [
        Recorded(wid, "import-small"),
        Recorded(f"import-gate-{t.workspace_id}", "import-gate-small"),
    ]


@scenario("import-continue-as-new")
async def import_continue_as_new(ctx: Ctx, tq: str) -> list[Recorded]:
    # 30 rows in 2-row chunks, 5 chunks a run, 3 at a time: 3 runs of one workflow id.
    wid, t, _ = await _import(
        ctx,
        tq,
        _emails("c", 30),
        import_chunk_rows=2,
        import_sub_batch_rows=1,
        import_chunks_per_run=5,
        import_parallel_chunks=3,
    )
    return [
        Recorded(wid, "import-continue-as-new"),
        Recorded(f"import-gate-{t.workspace_id}", "import-gate-across-runs"),
    ]


@scenario("import-rechunk")
async def import_rechunk(ctx: Ctx, tq: str) -> list[Recorded]:
    """Chunks deleted as they appear (an expired TTL, a flushed Redis): rebuilt from the blob."""
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq, import_chunk_rows=5, import_parallel_chunks=1)
    async with running_worker(ctx.client, settings, tq) as services:
        data = csv_bytes(_emails("r", 40))
        up = await upload(services, settings, t.workspace_id, t.user_id, data)
        stop = asyncio.Event()

        async def flush() -> int:
            deleted = 0
            pattern = f"import:{up.import_id}:chunk:[4-7]"
            while not stop.is_set() and deleted < 3:
                for k in [k async for k in services.redis.scan_iter(match=pattern)]:
                    deleted += await services.redis.delete(k)
                await asyncio.sleep(0.01)
            return deleted

        flusher = asyncio.create_task(flush())
        handle = await _confirm(ctx, services, settings, t, up)
        await handle.result()
        stop.set()
        if await flusher < 1:
            raise RuntimeError("import-rechunk: no chunk was lost; the path was not taken")
    return [Recorded(handle.id, "import-rechunk")]


@scenario("import-failure")
async def import_failure(ctx: Ctx, tq: str) -> list[Recorded]:
    """An import whose record does not exist: the first step refuses it at once."""
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq)
    import_id = str(uuid.uuid4())
    async with running_worker(ctx.client, settings, tq):
        handle = await ctx.client.start_workflow(
            WF_PROCESS_CSV,
            ProcessCsvInput(import_id=import_id, workspace_id=t.workspace_id, user_id=t.user_id),
            id=f"import-{import_id}",
            task_queue=tq,
        )
        await _expect_failure(handle)
    return [Recorded(handle.id, "import-failure")]


@scenario("import-cancel")
async def import_cancel(ctx: Ctx, tq: str) -> list[Recorded]:
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq, import_chunk_rows=1, import_parallel_chunks=1)
    async with running_worker(ctx.client, settings, tq) as services:
        data = csv_bytes(_emails("x", 200))
        up = await upload(services, settings, t.workspace_id, t.user_id, data)
        handle = await _confirm(ctx, services, settings, t, up)
        while True:
            if (await handle.query("progress"))["chunks_done"] >= 2:
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        await _expect_failure(handle)
    return [Recorded(handle.id, "import-cancel")]


@scenario("import-cancel-at-start")
async def import_cancel_at_start(ctx: Ctx, tq: str) -> list[Recorded]:
    """Cancelled right after the confirm: claim-import ends first (shielded), then the run
    marks the record it holds cancelled."""
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq)
    async with running_worker(ctx.client, settings, tq) as services:
        up = await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(_emails("y", 5)))
        handle = await _confirm(ctx, services, settings, t, up)
        await handle.cancel()
        await _expect_failure(handle)
    return [Recorded(handle.id, "import-cancel-at-start")]


# --- enrich-avatars (with process-csv) -------------------------------------------------


def _avatar_settings(ctx: Ctx, tq: str, grav: FakeGravatar, **kw: Any) -> Settings:
    return ctx.settings(
        temporal_task_queue=tq, gravatar_enabled=True, gravatar_base_url=f"{grav.url}/avatar",
        gravatar_rate_per_second=50.0, gravatar_batch=2, gravatar_lanes=2,
        gravatar_poll_seconds=0.2, gravatar_lookups_per_run=6, **kw,
    )  # fmt: skip


@scenario("import-avatars")
async def import_avatars(ctx: Ctx, tq: str) -> list[Recorded]:
    """A chunked import with Gravatar on: ProcessCsv starts the avatars job, which reports
    to it, waits out a 429, continues as new, and ends once the import owes nothing."""
    rows = _emails("v", 20)
    known = {email_hash(r[0]) for r in rows[1::3]}
    async with FakeGravatar(known=known, latency=0.05) as grav:
        grav.throttle = 1
        t = await ctx.tenant()
        settings = _avatar_settings(ctx, tq, grav, import_chunk_rows=4, import_parallel_chunks=1)
        async with running_worker(ctx.client, settings, tq) as services:
            up = await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(rows))
            handle = await _confirm(ctx, services, settings, t, up)
            await handle.result()
            await avatars_done(ctx.client, up.import_id)
    return [
        Recorded(handle.id, "import-avatars"),
        Recorded(avatars_workflow_id(up.import_id), "avatars"),
    ]


@scenario("import-avatars-small")
async def import_avatars_small(ctx: Ctx, tq: str) -> list[Recorded]:
    rows = _emails("w", 5)
    async with FakeGravatar(known={email_hash(rows[1][0])}) as grav:
        on = {"gravatar_enabled": True, "gravatar_base_url": f"{grav.url}/avatar"}
        wid, _, _ = await _import(ctx, tq, rows, **on)
    return [Recorded(wid, "import-avatars-small")]


@scenario("import-avatars-cancel")
async def import_avatars_cancel(ctx: Ctx, tq: str) -> list[Recorded]:
    """The import cancelled while it commits rows: its avatars job (waiting for them) is
    cancelled with it and drops what is owed."""
    async with FakeGravatar(latency=0.3) as grav:
        t = await ctx.tenant()
        settings = _avatar_settings(ctx, tq, grav, import_chunk_rows=1, import_parallel_chunks=1)
        async with running_worker(ctx.client, settings, tq) as services:
            up = await upload(services, settings, t.workspace_id, t.user_id,
                              csv_bytes(_emails("z", 200)))  # fmt: skip
            handle = await _confirm(ctx, services, settings, t, up)
            while (await handle.query("progress"))["chunks_done"] < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            await handle.cancel()
            await _expect_failure(handle)
            await _expect_failure(ctx.client.get_workflow_handle(avatars_workflow_id(up.import_id)))
    return [
        Recorded(handle.id, "import-avatars-cancel"),
        Recorded(avatars_workflow_id(up.import_id), "avatars-cancel"),
    ]


# --- process-export --------------------------------------------------------------------


async def _contacts(ctx: Ctx, t: Tenant, n: int, tag: str | None = None) -> None:
    ws = uuid.UUID(t.workspace_id)
    await ctx.owner.executemany(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1, $2)",
        [(ws, f"e{i}@example.com") for i in range(n)],
    )
    if tag:
        await ctx.owner.execute(
            "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, $3)", uuid.uuid4(), ws, tag
        )


async def _export(ctx: Ctx, tq: str, t: Tenant, settings: Settings, tags: list[str]) -> Any:
    async with running_worker(ctx.client, settings, tq) as services:
        export_id, user = await exports.create_export(services.pool, t.workspace_id, None, tags)
        handle = await ctx.client.start_workflow(
            WF_PROCESS_EXPORT,
            ProcessExportInput(export_id=export_id, workspace_id=t.workspace_id, user_id=user),
            id=export_workflow_id(export_id),
            task_queue=tq,
        )
        # A failing export is awaited by its scenario, which checks that it failed.
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
    return handle


@scenario("export-success")
async def export_success(ctx: Ctx, tq: str) -> list[Recorded]:
    t = await ctx.tenant()
    await _contacts(ctx, t, 5)
    handle = await _export(ctx, tq, t, ctx.settings(), [])
    return [Recorded(handle.id, "export-success")]


@scenario("export-empty-tag")
async def export_empty_tag(ctx: Ctx, tq: str) -> list[Recorded]:
    t = await ctx.tenant()
    await _contacts(ctx, t, 3, tag="nobody")
    handle = await _export(ctx, tq, t, ctx.settings(), ["nobody"])
    return [Recorded(handle.id, "export-empty-tag")]


@scenario("export-failure")
async def export_failure(ctx: Ctx, tq: str) -> list[Recorded]:
    """A blob store that cannot be written (its root is a file): every attempt fails."""
    t = await ctx.tenant()
    await _contacts(ctx, t, 2)
    blocker = ctx.stack.root / f"not-a-directory-{uuid.uuid4().hex[:6]}"
    blocker.write_text("x")
    handle = await _export(ctx, tq, t, ctx.settings(blob_url=str(blocker)), [])
    await _expect_failure(handle)
    return [Recorded(handle.id, "export-failure")]


@scenario("export-cancel")
async def export_cancel(ctx: Ctx, tq: str) -> list[Recorded]:
    """Cancelled while stream-export holds after its first chunk: the workflow waits for it
    to discard its unfinished file, then marks the export cancelled."""
    from temporalio.worker import Worker

    from activities.gate import GateActivities
    from folksjobs.services import open_services
    from tests.test_export_faults import HoldingExportActivities
    from workflows.export_csv import ProcessExport
    from workflows.gate import EXPORT_GATE, SlotGate

    t = await ctx.tenant()
    await _contacts(ctx, t, 20)
    settings = ctx.settings()
    async with open_services(settings, pool_size=4) as s:
        a = HoldingExportActivities(s.pool, s.blob, s.email, s.settings)
        a.reached = asyncio.Event()
        gate = GateActivities({EXPORT_GATE: 2}).activities()
        async with Worker(ctx.client, task_queue=tq, workflows=[ProcessExport, SlotGate],
                          activities=[*a.activities(), *gate]):  # fmt: skip
            export_id, user = await exports.create_export(s.pool, t.workspace_id, None, [])
            handle = await ctx.client.start_workflow(
                WF_PROCESS_EXPORT,
                ProcessExportInput(
                    export_id=export_id,
                    workspace_id=t.workspace_id,
                    user_id=user,
                    heartbeat_timeout_seconds=2,
                ),
                id=export_workflow_id(export_id),
                task_queue=tq,
            )
            await asyncio.wait_for(a.reached.wait(), timeout=60)
            await handle.cancel()
            await _expect_failure(handle)
    return [Recorded(handle.id, "export-cancel")]


# --- send-welcome ----------------------------------------------------------------------


@scenario("welcome-success")
async def welcome_success(ctx: Ctx, tq: str) -> list[Recorded]:
    t = await ctx.tenant()
    async with running_worker(ctx.client, ctx.settings(), tq):
        handle = await ctx.client.start_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=t.user_id), id=f"welcome-{t.user_id}",
            task_queue=tq,
        )  # fmt: skip
        await handle.result()
    return [Recorded(handle.id, "welcome-success")]


@scenario("welcome-retried-then-failed")
async def welcome_failed(ctx: Ctx, tq: str) -> list[Recorded]:
    t = await ctx.tenant()
    async with FakeEmailProvider(fail_first=10**6) as provider:
        # Since email-delivery-window a provider's 500 waits for the window: a short one.
        settings = ctx.settings(email_backend="http", email_api_url=provider.url,
                                email_welcome_window_seconds=3, email_retry_max_seconds=0.5,
                                email_outage_hold_seconds=0.1)  # fmt: skip
        async with running_worker(ctx.client, settings, tq):
            handle = await ctx.client.start_workflow(
                WF_SEND_WELCOME, SendWelcomeInput(user_id=t.user_id), id=f"welcome-{t.user_id}",
                task_queue=tq,
            )  # fmt: skip
            await _expect_failure(handle)
    return [Recorded(handle.id, "welcome-retried-then-failed")]


# --- weekly-digest ---------------------------------------------------------------------


@scenario("digest-one-workspace-failing")
async def digest_one_failing(ctx: Ctx, tq: str) -> list[Recorded]:
    """Three workspaces with new contacts, pages of 2 (so continue-as-new), one owner gone."""
    at = datetime(2025, 3, 3, 8, tzinfo=UTC)
    spaces = [await ctx.tenant() for _ in range(3)]
    for t in spaces:
        await ctx.owner.execute(
            "INSERT INTO contacts (workspace_id, email, created_at) VALUES ($1::uuid, $2, $3)",
            t.workspace_id, "new@example.com", at - timedelta(days=1),
        )  # fmt: skip
    # The owner vanishes while the workspace stays; the foreign key forbids that, so this
    # one session skips FK triggers (superuser, recorder only).
    async with ctx.owner.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM users WHERE id = $1::uuid", spaces[0].user_id)
    # Only these three are visited (the recorder's database is its own): two short runs.
    await ctx.owner.execute(
        "UPDATE workspaces SET active = false WHERE NOT id = ANY($1::uuid[])",
        [t.workspace_id for t in spaces],
    )
    settings = ctx.settings(digest_page_size=2, digest_concurrency=2)
    async with running_worker(ctx.client, settings, tq):
        handle = await ctx.client.start_workflow(
            WF_WEEKLY_DIGEST,
            WeeklyDigestInput(scheduled_for=at),
            id=f"digest-replay-{uuid.uuid4().hex[:8]}",
            task_queue=tq,
        )
        result = await handle.result()
    if spaces[0].workspace_id not in result["failed_workspace_ids"]:
        raise RuntimeError("digest-one-workspace-failing: the orphaned workspace did not fail")
    return [Recorded(handle.id, "digest-one-workspace-failing")]


async def _busy_spaces(ctx: Ctx, n: int, at: datetime) -> list[Tenant]:
    """n workspaces with a new contact in the week before `at`, the only active ones."""
    spaces = [await ctx.tenant() for _ in range(n)]
    for t in spaces:
        await ctx.owner.execute(
            "INSERT INTO contacts (workspace_id, email, created_at) VALUES ($1::uuid, $2, $3)",
            t.workspace_id, "new@example.com", at - timedelta(days=1),
        )  # fmt: skip
    await ctx.owner.execute(
        "UPDATE workspaces SET active = false WHERE NOT id = ANY($1::uuid[])",
        [t.workspace_id for t in spaces],
    )
    return spaces


async def _digest(ctx: Ctx, tq: str, settings: Settings, at: datetime) -> Any:
    async with running_worker(ctx.client, settings, tq):
        handle = await ctx.client.start_workflow(
            WF_WEEKLY_DIGEST,
            WeeklyDigestInput(scheduled_for=at),
            id=f"digest-replay-{uuid.uuid4().hex[:8]}",
            task_queue=tq,
        )
        return handle, await handle.result()


@scenario("digest-batch")
async def digest_batch(ctx: Ctx, tq: str) -> list[Recorded]:
    """Three workspaces, batches of 2 through the provider's batch endpoint, the first
    accepted and its answer lost (retried under the same key)."""
    at = datetime.now(UTC)
    await _busy_spaces(ctx, 3, at)
    async with MailStandIn(rate=50, slow_accepts=1, slow_seconds=1.5) as provider:
        settings = ctx.settings(email_backend="http", email_api_url=provider.url,
                                email_batch_size=2, email_timeout_seconds=0.5)  # fmt: skip
        handle, result = await _digest(ctx, tq, settings, at)
    if result["summary"]["sent"] != 3 or len(provider.delivered) != 3:
        raise RuntimeError(f"digest-batch: {result['summary']}, {len(provider.delivered)} sent")
    return [Recorded(handle.id, "digest-batch")]


@scenario("digest-outage-waits")
async def digest_waits(ctx: Ctx, tq: str) -> list[Recorded]:
    """Two workspaces; the provider down for 2 s: both digests wait (each told to the run
    by a digest-waiting signal), then go out."""
    at = datetime.now(UTC)
    await _busy_spaces(ctx, 2, at)
    async with MailStandIn(rate=50) as provider:
        provider.outage(2)
        settings = ctx.settings(email_backend="http", email_api_url=provider.url,
                                email_retry_max_seconds=0.5,
                                email_outage_hold_seconds=0.1)  # fmt: skip
        handle, result = await _digest(ctx, tq, settings, at)
    if result["summary"]["sent"] != 2 or provider.statuses.get(503, 0) < 1:
        raise RuntimeError(f"digest-outage-waits: {result['summary']}, {provider.statuses}")
    return [Recorded(handle.id, "digest-outage-waits")]


@scenario("digest-outage-given-up")
async def digest_given_up(ctx: Ctx, tq: str) -> list[Recorded]:
    """Two workspaces; the provider down until the digest's window closes (2 s here)."""
    at = datetime.now(UTC)
    await _busy_spaces(ctx, 2, at)
    async with MailStandIn(rate=50) as provider:
        provider.outage(3600)
        settings = ctx.settings(email_backend="http", email_api_url=provider.url,
                                email_digest_margin_seconds=7 * 86400 - 2,
                                email_notification_window_seconds=1,
                                email_retry_max_seconds=0.5,
                                email_outage_hold_seconds=0.1)  # fmt: skip
        handle, result = await _digest(ctx, tq, settings, at)
    if result["summary"]["given_up"] != 2:
        raise RuntimeError(f"digest-outage-given-up: {result['summary']}")
    return [Recorded(handle.id, "digest-outage-given-up")]


# --- discard-stale-uploads -------------------------------------------------------------


@scenario("discard-stale-uploads")
async def discard_stale_uploads(ctx: Ctx, tq: str) -> list[Recorded]:
    """One pending upload, older than the limit asked for: discarded with its file."""
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq)
    async with running_worker(ctx.client, settings, tq) as services:
        await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(_emails("d", 2)))
        handle = await ctx.client.start_workflow(
            WF_DISCARD_STALE_UPLOADS,
            DiscardStaleUploadsInput(older_than_seconds=0),
            id=f"discard-stale-uploads-replay-{uuid.uuid4().hex[:8]}",
            task_queue=tq,
        )
        result = await handle.result()
    if result["discarded"] < 1:
        raise RuntimeError("discard-stale-uploads: nothing was discarded")
    return [Recorded(handle.id, "discard-stale-uploads")]


# --- expire-files ------------------------------------------------------------------------


@scenario("expire-files")
async def expire_files(ctx: Ctx, tq: str) -> list[Recorded]:
    """An import that has ended: its file deleted at once (retention 0), its record kept."""
    t = await ctx.tenant()
    settings = ctx.settings(temporal_task_queue=tq)
    async with running_worker(ctx.client, settings, tq) as services:
        up = await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(_emails("x", 2)))
        await ctx.owner.execute(
            "UPDATE imports SET status = 'completed', completed_at = now() - interval '1 minute'"
            " WHERE id = $1",
            uuid.UUID(up.import_id),
        )
        handle = await ctx.client.start_workflow(
            WF_EXPIRE_FILES,
            ExpireFilesInput(upload_retention_seconds=0),
            id=f"expire-files-replay-{uuid.uuid4().hex[:8]}",
            task_queue=tq,
        )
        result = await handle.result()
    if result["upload_files_deleted"] < 1:
        raise RuntimeError("expire-files: no file was deleted")
    return [Recorded(handle.id, "expire-files")]


# --- delete-workspace, delete-user -------------------------------------------------------


async def _dispatch(ctx: Ctx, tq: str, name: str, data: dict[str, str]) -> Any:
    settings = ctx.settings(temporal_task_queue=tq)
    async with running_worker(ctx.client, settings, tq) as services:
        d = await dispatch(ctx.client, settings, parse_event(name, data), pool=services.pool)
        handle = ctx.client.get_workflow_handle(d.workflow_id, run_id=d.run_id)
        return handle, await handle.result()


@scenario("delete-workspace")
async def delete_workspace(ctx: Ctx, tq: str) -> list[Recorded]:
    """A workspace with contacts, a completed export and a pending upload, deleted."""
    t = await ctx.tenant()
    await _contacts(ctx, t, 4, tag="vip")
    await _export(ctx, tq, t, ctx.settings(), [])
    settings = ctx.settings(temporal_task_queue=tq)
    async with running_worker(ctx.client, settings, tq) as services:
        await upload(services, settings, t.workspace_id, t.user_id, csv_bytes(_emails("p", 2)))
    data = {"workspaceId": t.workspace_id, "userId": t.user_id}
    handle, result = await _dispatch(ctx, tq, "workspace/deleted", data)
    if result["status"] != "deleted" or result["pending_uploads_discarded"] != 1:
        raise RuntimeError(f"delete-workspace: {result}")
    # The same event for a workspace already gone: only its folders are checked.
    gone, again = await _dispatch(
        ctx, tq, "workspace/deleted", {"workspaceId": str(uuid.uuid4()), "userId": t.user_id}
    )
    if again["status"] != "not_found":
        raise RuntimeError(f"delete-workspace-not-found: {again}")
    return [
        Recorded(handle.id, "delete-workspace"),
        Recorded(gone.id, "delete-workspace-not-found"),
    ]


@scenario("delete-user")
async def delete_user(ctx: Ctx, tq: str) -> list[Recorded]:
    """A user who owns one workspace alone and one with a member, and belongs to a third."""
    t = await ctx.tenant()
    shared = await seed.create_workspace(ctx.owner, t.user_id, "Shared")
    other = await ctx.tenant()
    await seed.add_member(ctx.owner, shared, other.user_id)
    await seed.add_member(ctx.owner, other.workspace_id, t.user_id)
    handle, result = await _dispatch(ctx, tq, "user/deleted", {"userId": t.user_id})
    if result["workspaces_deleted"] != [t.workspace_id] or result["workspaces_kept"] != [shared]:
        raise RuntimeError(f"delete-user: {result}")
    gone, again = await _dispatch(ctx, tq, "user/deleted", {"userId": str(uuid.uuid4())})
    if again["status"] != "not_found":
        raise RuntimeError(f"delete-user-not-found: {again}")
    return [
        Recorded(handle.id, "delete-user"),
        Recorded(f"delete-workspace-{t.workspace_id}", "delete-workspace-child"),
        Recorded(gone.id, "delete-user-not-found"),
    ]


# --- saving ----------------------------------------------------------------------------


async def _expect_failure(handle: Any) -> None:
    try:
        await handle.result()
    except WorkflowFailureError:
        return
    raise RuntimeError(f"{handle.id} was expected to fail and did not")


async def runs(client: Client, workflow_id: str) -> list[WorkflowHistory]:
    """Every run of `workflow_id`, first to latest, following continue-as-new."""
    latest = await client.get_workflow_handle(workflow_id).fetch_history()
    started = latest.events[0].workflow_execution_started_event_attributes
    run_id: str | None = started.first_execution_run_id or None
    out: list[WorkflowHistory] = []
    while run_id:
        h = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        out.append(h)
        last = h.events[-1]
        run_id = None
        if last.HasField("workflow_execution_continued_as_new_event_attributes"):
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return out


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    )
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "workflows"], cwd=HERE)
    return out.stdout.strip() + ("+dirty-workflows" if dirty.returncode else "")


async def record(
    names: list[str], out: Path, index: dict[str, Any], overwrite: bool, suffix: str = ""
) -> list[str]:
    commit = _commit()
    written: list[str] = []
    with tempfile.TemporaryDirectory(prefix="folksjobs-record-") as tmp:
        root = Path(tmp)
        pg, vk = EmbeddedPostgres(root / "pg"), EmbeddedValkey(root / "valkey")
        temporal = TemporalDevServer(root / "temporal")
        pg.start()
        vk.start(persist=False)
        temporal.start()
        try:
            stack = Stack(root, pg.dsn, vk.url, temporal, pg, vk)
            await db.migrate(pg.dsn)
            owner = await db.create_owner_pool(pg.dsn, max_size=4)
            client = await connect(make_settings(stack))
            ctx = Ctx(client, stack, owner)
            for name in names:
                print(f"{name} ...", flush=True)
                for rec in await SCENARIOS[name](ctx, f"record-{uuid.uuid4().hex[:8]}"):
                    histories = await runs(client, rec.workflow_id)
                    for n, h in enumerate(histories, start=1):
                        run = f".run{n}" if len(histories) > 1 else ""
                        file = f"{rec.scenario}{suffix and '@' + suffix}{run}.json"
                        if (out / file).exists() and not overwrite:
                            print(f"  {file} exists, kept")
                            continue
                        (out / file).write_text(h.to_json() + "\n")
                        wtype = h.events[0].workflow_execution_started_event_attributes
                        index[file] = {
                            "workflow_id": rec.workflow_id,
                            "workflow_type": wtype.workflow_type.name,
                            "scenario": rec.scenario,
                            "events": len(h.events),
                            "recorded_on": commit,
                        }
                        written.append(file)
                        print(f"  {file}: {len(h.events)} events")
            await owner.close()
        finally:
            temporal.stop()
            vk.stop()
            pg.stop(mode="immediate")
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="repeatable")
    p.add_argument("--out", type=Path, default=HERE)
    p.add_argument("--overwrite", action="store_true", help="rewrite files that exist")
    p.add_argument("--suffix", default="", help="name@SUFFIX.json: after a workflow change")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / INDEX
    index: dict[str, Any] = json.loads(index_path.read_text()) if index_path.exists() else {}
    names = args.only or list(SCENARIOS)
    written = asyncio.run(record(names, args.out, index, args.overwrite, args.suffix))
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    print(f"{len(written)} histories written to {args.out}")


if __name__ == "__main__":
    main()
