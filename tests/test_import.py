"""process-csv end to end against real Temporal, PostgreSQL and Valkey."""

from __future__ import annotations

import asyncio
import uuid
from email import message_from_bytes
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHistory

from folksjobs.confirm import confirm_import
from folksjobs.infra import rediskeys
from folksjobs.models import WF_PROCESS_CSV, ProcessCsvInput
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import (
    avatars_done,
    contacts,
    csv_bytes,
    import_bytes,
    import_row,
    local_activities,
    upload,
)

HEADER = ["E-mail", "First Name", "Last Name", "Company", "Phone", "Plan"]


def outbox_subjects(folder: Path) -> list[str]:
    return sorted(str(message_from_bytes(p.read_bytes())["Subject"]) for p in folder.glob("*.eml"))


def scheduled(history: WorkflowHistory, activity: str) -> int:
    """How many times the run scheduled `activity` (retries are attempts, not schedules)."""
    return sum(
        1
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
    )


def assert_adds_up(result: dict[str, Any], total: int) -> None:
    assert result["total_rows"] == total
    parts = (result["inserted"] + result["updated"] + result["unchanged"] + result["failed"]
             + result["duplicates"])  # fmt: skip
    assert parts == total


async def test_small_file_end_to_end(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    data = csv_bytes(
        [
            HEADER,
            ["Ann@Example.com ", "Ann", "Lee", "Acme, Inc.", "00123", "gold"],
            ["bob@example.com", "Bob", "Ray", 'He said "hi"', "1E5", ""],
            ["not-an-email", "X", "Y", "", "", ""],
            ["carol@example.com", "Carol", "Line\nbreak", "", "", "silver"],
        ],
        bom=True,
    )
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert up.headers == HEADER  # the BOM never reaches the first header
    assert up.mapping == ["email", "first_name", "last_name", "company", "phone", "custom:Plan"]
    assert up.total_rows == 4
    assert result["status"] == "completed"
    assert (result["inserted"], result["updated"], result["failed"], result["duplicates"]) == (
        3,
        0,
        1,
        0,
    )
    assert result["error_samples"] == [
        {"row": 4, "reason": "invalid email address: An email address must have an @-sign."}
    ]
    got = await contacts(owner_pool, tenant.workspace_id)
    assert set(got) == {"ann@example.com", "bob@example.com", "carol@example.com"}
    assert got["ann@example.com"]["company"] == "Acme, Inc."
    assert got["ann@example.com"]["phone"] == "00123"
    assert got["ann@example.com"]["custom_fields"] == {"Plan": "gold"}
    assert got["bob@example.com"]["company"] == 'He said "hi"'
    assert got["bob@example.com"]["phone"] == "1E5"
    assert got["bob@example.com"]["custom_fields"] == {}
    assert got["carol@example.com"]["last_name"] == "Line\nbreak"
    rec = await import_row(owner_pool, up.import_id)
    assert rec["status"] == "completed"
    assert (rec["processed_rows"], rec["inserted_rows"], rec["failed_rows"]) == (4, 3, 1)
    assert rec["ai_summary"].startswith("Processed 4 rows")
    # 1 failed of 4 is above 5 %: the error report goes out with the completion email.
    assert outbox_subjects(settings.outbox_dir) == [
        "1 rows of contacts.csv could not be imported",
        "Your import of contacts.csv is complete",
    ]
    # Redis holds nothing of the import any more.
    keys = [k async for k in services.redis.scan_iter(match=rediskeys.import_pattern(up.import_id))]
    assert keys == []


async def test_dedup_within_and_across_chunks(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    # 3-row chunks: rows 1-3 are chunk 0, rows 4-6 chunk 1, row 7 chunk 2.
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        import_chunk_rows=3,
        import_sub_batch_rows=2,
        import_parallel_chunks=3,
    )
    data = csv_bytes(
        [
            ["email", "first_name"],
            ["a@x.io", "a-first"],  # chunk 0, superseded in its chunk
            ["b@x.io", "b-only"],  # chunk 0
            [" A@X.IO", "a-last"],  # chunk 0: the last row of a@ in chunk 0 wins
            ["a@x.io", "a-chunk1"],  # chunk 1: an earlier chunk has a@ -> duplicate
            ["c@x.io", "c1"],  # chunk 1, superseded
            ["C@x.io ", "c2"],  # chunk 1 wins for c@
            ["b@x.io", "b-chunk2"],  # chunk 2: duplicate of chunk 0's b@
        ]
    )
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert_adds_up(result, 7)
    assert (result["inserted"], result["updated"], result["duplicates"]) == (3, 0, 4)
    got = await contacts(owner_pool, tenant.workspace_id)
    assert {e: c["first_name"] for e, c in got.items()} == {
        "a@x.io": "a-last",
        "b@x.io": "b-only",
        "c@x.io": "c2",
    }


async def test_reimport_counts_updates_and_unchanged_rows(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """A re-import updates the contacts whose row differs, and counts the others unchanged
    (not written): the counts still add up to the file's rows, in the result and the record."""
    settings = make_settings(stack, temporal_task_queue=task_queue, import_chunk_rows=4)
    rows = [["email", "name"]] + [[f"u{i}@example.com", f"U{i}"] for i in range(10)]
    again = [rows[0]] + [[e, n + ("x" if i % 3 == 0 else "")] for i, (e, n) in enumerate(rows[1:])]
    async with running_worker(client, settings, task_queue) as services:
        _, first = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
        )
        up, second = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(again)
        )
    assert (first["inserted"], first["updated"], first["unchanged"]) == (10, 0, 0)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 4, 6)
    rec = await import_row(owner_pool, up.import_id)
    assert (rec["updated_rows"], rec["unchanged_rows"], rec["processed_rows"]) == (4, 6, 10)
    assert len(await contacts(owner_pool, tenant.workspace_id)) == 10


async def test_error_report_only_above_threshold(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    # 1 bad row in 25 = 4 %: below the 5 % threshold, no error report.
    rows = [["email"]] + [[f"ok{i}@example.com"] for i in range(24)] + [["bad"]]
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
        )
    assert result["failed"] == 1
    assert outbox_subjects(settings.outbox_dir) == ["Your import of contacts.csv is complete"]


async def test_missing_record_fails_at_once_without_retry(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue):
        handle = await client.start_workflow(
            WF_PROCESS_CSV,
            ProcessCsvInput(
                import_id=str(uuid.uuid4()),
                workspace_id=tenant.workspace_id,
                user_id=tenant.user_id,
            ),
            id=f"import-{uuid.uuid4()}",
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError) as info:
            await handle.result()
        history = await handle.fetch_history()
    assert "not found" in str(info.value.cause)
    # claim-import is a local activity: one attempt, and nothing after it.
    assert local_activities(history) == [("claim-import", 1)]
    assert not any(e.HasField("activity_task_scheduled_event_attributes") for e in history.events)


async def test_many_chunks_continue_as_new(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    # 120 rows in 2-row chunks = 60 chunks, 10 per run: the import is 6 runs of one id.
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        import_chunk_rows=2,
        import_sub_batch_rows=1,
        import_chunks_per_run=10,
        import_parallel_chunks=4,
    )
    rows = [["email"]] + [[f"m{i % 100}@example.com"] for i in range(120)]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert_adds_up(result, 120)
    assert (result["inserted"], result["duplicates"]) == (100, 20)
    assert len(runs) == 6
    assert len(await contacts(owner_pool, tenant.workspace_id)) == 100


async def test_lost_chunk_is_rebuilt_from_the_blob(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_chunk_rows=5, import_parallel_chunks=1
    )
    rows = [["email"]] + [[f"l{i}@example.com"] for i in range(40)] + [["l0@example.com"]]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        # Delete chunks as soon as they appear, as an expired TTL or a flushed Redis would.
        stop = asyncio.Event()

        async def flush_chunks() -> int:
            deleted = 0
            while not stop.is_set() and deleted < 3:
                for k in [
                    k
                    async for k in services.redis.scan_iter(
                        match=f"import:{up.import_id}:chunk:[4-7]"
                    )
                ]:
                    deleted += await services.redis.delete(k)
                await asyncio.sleep(0.01)
            return deleted

        flusher = asyncio.create_task(flush_chunks())
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
        stop.set()
        assert await flusher >= 1
        history = await handle.fetch_history()
    assert scheduled(history, "download-and-chunk") >= 2
    assert_adds_up(result, 41)
    assert (result["inserted"], result["duplicates"], result["failed"]) == (40, 1, 0)
    assert len(await contacts(owner_pool, tenant.workspace_id)) == 40


async def test_activity_failing_after_commit_keeps_counts_exact(
    client: Client,
    stack: Stack,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt that commits its sub-batches and then dies is retried without double counts."""
    from activities.imports import ImportActivities

    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_chunk_rows=4, import_sub_batch_rows=2
    )
    original = ImportActivities._chunk_result
    crashed: set[int] = set()

    async def crash_once(self: ImportActivities, job: Any) -> Any:
        if job.chunk_index not in crashed:
            crashed.add(job.chunk_index)
            raise RuntimeError("worker lost after COMMIT")
        return await original(self, job)

    monkeypatch.setattr(ImportActivities, "_chunk_result", crash_once)
    rows = [["email"]] + [[f"k{i}@example.com"] for i in range(10)] + [["k1@example.com"]]
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
        )
    assert crashed == {0, 1, 2}
    assert_adds_up(result, 11)
    assert (result["inserted"], result["updated"], result["duplicates"]) == (10, 0, 1)


async def test_progress_query_and_cancel(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_chunk_rows=1, import_parallel_chunks=1
    )
    rows = [["email"]] + [[f"p{i}@example.com"] for i in range(300)]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        while True:
            p = await handle.query("progress")
            if p["chunks_done"] >= 2:
                break
            await asyncio.sleep(0.05)
        assert p["chunks_total"] == 300
        assert p["counts"]["total_rows"] == 300
        assert p["counts"]["processed_rows"] <= 300
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    rec = await import_row(owner_pool, up.import_id)
    assert rec["status"] == "cancelled"
    assert 0 < rec["processed_rows"] < 300


async def test_repeated_confirmation_starts_one_import(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    rows = [["email"], ["once@example.com"]]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        h1 = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        h2 = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        await h1.result()
        h3 = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        await h3.result()
    assert h1.id == h2.id == h3.id == f"import-{up.import_id}"
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{h1.id}'")]
    assert len(runs) == 1


async def test_redis_flushed_mid_import_gives_the_clean_result(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Redis loses everything (restart without persistence) while chunks are in flight."""
    settings = make_settings(
        stack,
        temporal_task_queue=task_queue,
        import_chunk_rows=10,
        import_sub_batch_rows=5,
        import_parallel_chunks=2,
        chunk_wait_seconds=2,
    )
    rows = [["email", "n"]] + [[f"f{i % 150}@example.com", str(i)] for i in range(200)]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        while (await handle.query("progress"))["chunks_done"] < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await services.redis.flushdb()
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    assert_adds_up(result, 200)
    assert (result["inserted"], result["updated"], result["duplicates"]) == (150, 0, 50)
    got = await contacts(owner_pool, tenant.workspace_id)
    # The earlier chunk wins for each repeated email, exactly as in a clean run.
    assert len(got) == 150
    assert {e: c["custom_fields"]["n"] for e, c in got.items()} == {
        f"f{i}@example.com": str(i) for i in range(150)
    }


async def test_gravatar_and_ai_summary_from_local_servers(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    from folksjobs.notify.gravatar import email_hash
    from tests.fakes import FakeAnthropic, FakeGravatar

    known = email_hash("has.avatar@example.com")
    rows = [["email"], ["Has.Avatar@example.com "], ["no.avatar@example.com"]]
    async with FakeGravatar(known={known}) as grav, FakeAnthropic("Two contacts arrived.") as ai:
        settings = make_settings(
            stack,
            temporal_task_queue=task_queue,
            gravatar_enabled=True,
            gravatar_base_url=f"{grav.url}/avatar",
            anthropic_api_key="test-key",
            anthropic_base_url=ai.url,
        )
        async with running_worker(client, settings, task_queue) as services:
            up, first = await import_bytes(
                client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
            )
            await avatars_done(client, up.import_id)
            asked = len(grav.requests)
            up, again = await import_bytes(
                client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
            )
            await avatars_done(client, up.import_id)
    got = await contacts(owner_pool, tenant.workspace_id)
    assert got["has.avatar@example.com"]["avatar_url"] == f"{grav.url}/avatar/{known}"
    assert got["no.avatar@example.com"]["avatar_url"] is None
    # Only SHA-256 hashes leave the process, and the cache answers the re-import.
    assert sorted(grav.requests) == sorted([known, email_hash("no.avatar@example.com")])
    assert asked == 2 and len(grav.requests) == 2
    assert first["ai_summary"] == again["ai_summary"] == "Two contacts arrived."
    # The prompt holds counts, never contact data.
    assert ai.prompts and all("example.com" not in p for p in ai.prompts)


@pytest.mark.parametrize("mode", ["overloaded", "hang", "unreachable"])
async def test_ai_summary_falls_back(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, mode: str
) -> None:
    from tests.fakes import FakeAnthropic

    async with FakeAnthropic(
        status=529 if mode == "overloaded" else 200, hang=mode == "hang"
    ) as ai:
        base = ai.url if mode != "unreachable" else "http://127.0.0.1:9"
        settings = make_settings(
            stack,
            temporal_task_queue=task_queue,
            anthropic_api_key="k",
            anthropic_base_url=base,
            ai_timeout_seconds=1.0,
        )
        async with running_worker(client, settings, task_queue) as services:
            _, result = await import_bytes(
                client,
                services,
                settings,
                tenant.workspace_id,
                tenant.user_id,
                csv_bytes([["email"], ["a@b.io"]]),
            )
    assert result["status"] == "completed"
    assert result["ai_summary"].startswith("Processed 1 rows: 1 new contacts")
    if mode != "unreachable":
        assert len(ai.prompts) == 1  # the SDK's own retries are off


async def test_commits_lost_by_a_database_crash_are_redone(
    client: Client,
    stack: Stack,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A crash with synchronous_commit=off can lose acknowledged commits: chunk 1's
    sub-batches (ledger rows and contacts) vanish after the activity reported them."""
    from activities.imports import ImportActivities

    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_chunk_rows=4, import_sub_batch_rows=2
    )
    original = ImportActivities._chunk_result
    lost: list[int] = []

    async def lose_chunk_1(self: ImportActivities, job: Any) -> Any:
        result = await original(self, job)
        if job.chunk_index == 1 and not lost:
            lost.append(1)
            await owner_pool.execute(
                "DELETE FROM import_batches WHERE import_id = $1::uuid AND chunk_index = 1",
                job.import_id,
            )
            await owner_pool.execute(
                "DELETE FROM contacts WHERE workspace_id = $1::uuid AND email = ANY($2::text[])",
                job.workspace_id,
                [f"z{i}@example.com" for i in range(4, 8)],
            )
        return result

    monkeypatch.setattr(ImportActivities, "_chunk_result", lose_chunk_1)
    rows = [["email"]] + [[f"z{i}@example.com"] for i in range(10)]
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows)
        )
    assert lost == [1]
    assert_adds_up(result, 10)
    assert (result["inserted"], result["updated"]) == (10, 0)
    assert len(await contacts(owner_pool, tenant.workspace_id)) == 10


async def test_chunker_process_killed_mid_file_gives_the_clean_result(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    """The CSV chunker is a child process of the worker: killed, its activity is retried
    and rebuilds the chunks not yet committed, with the same duplicate decisions."""
    import psutil

    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_chunk_rows=100, import_parallel_chunks=1
    )
    rows = [["email", "name"]] + [[f"p{i % 9_000}@example.com", f"n{i}"] for i in range(10_000)]
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(rows))

        async def kill_chunker() -> int:
            # Once the first chunk is in Redis: the child has started and is mid-file.
            written = rediskeys.chunks_written(up.import_id, 0)
            while True:
                children = psutil.Process().children(recursive=True)
                chunkers = [
                    p for p in children if "folksjobs.imports.chunker" in " ".join(p.cmdline())
                ]
                if chunkers and await services.redis.get(written):
                    chunkers[0].kill()
                    return chunkers[0].pid
                await asyncio.sleep(0.005)

        killer = asyncio.create_task(kill_chunker())
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
        await asyncio.wait_for(killer, 1)
        history = await handle.fetch_history()
    retried = [
        e.activity_task_started_event_attributes.last_failure.message
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.attempt > 1
    ]
    assert any("chunker exited" in m for m in retried), retried
    assert_adds_up(result, 10_000)
    assert (result["inserted"], result["duplicates"], result["failed"]) == (9_000, 1_000, 0)
    stored = await contacts(owner_pool, tenant.workspace_id)
    assert len(stored) == 9_000
    # The earlier chunk wins across chunks: p5 is row 7 (chunk 0) and again row 9,007.
    assert stored["p5@example.com"]["custom_fields"] == {"name": "n5"}
