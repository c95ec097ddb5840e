"""An import when what it depends on fails: the blob, Anthropic, the email provider, Gravatar.

Each case ends the way the issue asks: a clear error in error_log and a failure email
with nothing left in Redis, or a completed import whose optional parts fell back.
A failed import's process-batch attempts still waiting for chunks learn of their
cancellation on their next heartbeat to the server (throttled to most of the
heartbeat timeout), so those tests stop their worker with a 1 s grace period.
"""

from __future__ import annotations

import hashlib
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from folksjobs import errors
from folksjobs.confirm import confirm_import
from folksjobs.devtools.devstack import free_port
from folksjobs.imports.uploads import UploadResult
from folksjobs.infra import rediskeys
from folksjobs.models import avatars_workflow_id
from folksjobs.services import Services
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.fakes import FakeAnthropic, FakeEmailProvider, FakeGravatar
from tests.importing import avatars_done, contacts, csv_bytes, import_row, upload

ROWS = [["email", "first_name"], *([f"p{i}@example.com", f"P{i}"] for i in range(30))]


def subjects(folder: Path) -> list[str]:
    return sorted(str(message_from_bytes(p.read_bytes())["Subject"]) for p in folder.glob("*.eml"))


async def redis_keys(services: Services, import_id: str) -> list[bytes]:
    return [k async for k in services.redis.scan_iter(match=rediskeys.import_pattern(import_id))]


async def run_import(client: Client, services: Services, settings: Settings, tenant: Tenant,
                     up: UploadResult) -> dict[str, Any]:  # fmt: skip
    handle = await confirm_import(client, services.pool, settings, tenant.workspace_id,
                                  up.import_id)  # fmt: skip
    result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    return result


# --- the blob -----------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["missing", "truncated"])
async def test_damaged_blob_fails_clearly(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str,
    damage: str,
) -> None:  # fmt: skip
    settings = make_settings(stack, temporal_task_queue=task_queue, import_chunk_rows=10,
                             worker_graceful_shutdown_seconds=1)  # fmt: skip
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(ROWS))
        path = services.blob.local_path(up.blob_key)
        assert path is not None
        if damage == "missing":
            path.unlink()
        else:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        with pytest.raises(WorkflowFailureError) as info:
            await run_import(client, services, settings, tenant, up)
        leftovers = await redis_keys(services, up.import_id)
    expected = "missing from the blob store" if damage == "missing" else "truncated"
    assert expected in errors.root_message(info.value)
    rec = await import_row(owner_pool, up.import_id)
    assert rec["status"] == "failed"
    assert expected in rec["error_log"]["message"]
    assert leftovers == []
    assert len(subjects(settings.outbox_dir)) == 1
    # The truncated half never became contacts silently: at most what the ledger counted.
    got = await contacts(owner_pool, tenant.workspace_id)
    assert len(got) == rec["inserted_rows"]


async def test_failure_email_failing_never_hides_the_original_error(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    async with FakeEmailProvider(fail_first=10**6) as provider:
        settings = make_settings(stack, temporal_task_queue=task_queue, email_backend="http",
                                 email_api_url=provider.url,
                                 worker_graceful_shutdown_seconds=1)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            await services.blob.delete(up.blob_key)
            with pytest.raises(WorkflowFailureError) as info:
                await run_import(client, services, settings, tenant, up)
    assert provider.calls >= 1  # the failure email was tried, and failed
    assert "missing from the blob store" in errors.root_message(info.value)
    rec = await import_row(owner_pool, up.import_id)
    assert "missing from the blob store" in rec["error_log"]["message"]
    assert "email" not in rec["error_log"]["message"]


# --- the email provider -------------------------------------------------------------


async def test_email_provider_failing_twice_still_one_completion_email(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    async with FakeEmailProvider(fail_first=2) as provider:
        settings = make_settings(stack, temporal_task_queue=task_queue, email_backend="http",
                                 email_api_url=provider.url)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            result = await run_import(client, services, settings, tenant, up)
    assert result["status"] == "completed"
    assert provider.calls == 3
    assert len(provider.accepted) == 1
    assert provider.accepted[0]["to"] == [tenant.email]


# --- Anthropic ----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hang", "429", "529", "unreachable"])
async def test_ai_summary_falls_back(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str,
    mode: str,
) -> None:  # fmt: skip
    fake = FakeAnthropic(hang=mode == "hang", status=int(mode) if mode.isdigit() else 200)
    async with fake:
        url = f"http://127.0.0.1:{free_port()}" if mode == "unreachable" else fake.url
        settings = make_settings(stack, temporal_task_queue=task_queue, anthropic_api_key="k",
                                 anthropic_base_url=url, ai_timeout_seconds=1.0)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            result = await run_import(client, services, settings, tenant, up)
    assert result["status"] == "completed"
    assert result["ai_summary"].startswith("Processed 30 rows")
    # The SDK's own retries are off: one request, not three, per summary.
    assert len(fake.prompts) == (0 if mode == "unreachable" else 1)
    assert "p0@example.com" not in " ".join(fake.prompts)


async def test_ai_summary_used_when_anthropic_answers(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    async with FakeAnthropic(text="Thirty new contacts arrived.") as fake:
        settings = make_settings(stack, temporal_task_queue=task_queue, anthropic_api_key="k",
                                 anthropic_base_url=fake.url)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            result = await run_import(client, services, settings, tenant, up)
    assert result["ai_summary"] == "Thirty new contacts arrived."
    # Aggregate counts only: no contact data in the prompt.
    assert "@" not in fake.prompts[0]


# --- Gravatar -----------------------------------------------------------------------


async def test_gravatar_hanging_means_no_avatar_and_a_completed_import(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """The import never waits for Gravatar: it completes with its 30 avatars owed, and the
    avatars job keeps asking (here it is cancelled; nothing was cached as a miss)."""
    async with FakeGravatar(hang=True) as gravatar:
        settings = make_settings(stack, temporal_task_queue=task_queue, gravatar_enabled=True,
                                 gravatar_base_url=f"{gravatar.url}/avatar",
                                 gravatar_timeout_seconds=0.5)  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            result = await run_import(client, services, settings, tenant, up)
            await gravatar.until(lambda: bool(gravatar.requests))  # asked; no answer comes
            avatars = client.get_workflow_handle(avatars_workflow_id(up.import_id))
            await avatars.cancel()
            with pytest.raises(WorkflowFailureError):
                await avatars.result()
            hashes = [hashlib.sha256(r[0].encode()).hexdigest() for r in ROWS[1:]]
            cached = await services.redis.mget([rediskeys.gravatar(h) for h in hashes])
    assert (result["status"], result["inserted"], result["failed"]) == ("completed", 30, 0)
    assert result["avatars"] == {"done": 0, "pending": 30}
    got = await contacts(owner_pool, tenant.workspace_id)
    assert len(got) == 30
    assert all(c["avatar_url"] is None for c in got.values())
    assert cached == [None] * 30


async def test_gravatar_known_hash_gives_an_avatar(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    known = hashlib.sha256(b"p1@example.com").hexdigest()
    async with FakeGravatar(known={known}) as gravatar:
        settings = make_settings(stack, temporal_task_queue=task_queue, gravatar_enabled=True,
                                 gravatar_base_url=f"{gravatar.url}/avatar")  # fmt: skip
        async with running_worker(client, settings, task_queue) as services:
            up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                              csv_bytes(ROWS))  # fmt: skip
            await run_import(client, services, settings, tenant, up)
            await avatars_done(client, up.import_id)
    got = await contacts(owner_pool, tenant.workspace_id)
    assert known in (got["p1@example.com"]["avatar_url"] or "")
    assert got["p2@example.com"]["avatar_url"] is None
