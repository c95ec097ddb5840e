"""A file of at most IMPORT_INLINE_MAX_ROWS rows (one chunk): one import-small activity
(parsed in the worker, process-batch's code and ledger), against the same file through the
chunker path; a crash of import-small after a commit; the setting at 0 turns it off."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import Client

from activities.imports import ImportActivities
from folksjobs.confirm import confirm_import
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import contacts, csv_bytes, local_activities, upload

ROWS = [
    ["email", "first_name", "company"],
    ["a@x.io", "a-first", "A"],  # superseded by row 4 (the last row of an email wins)
    ["b@x.io", "b", "B"],
    ["not-an-email", "bad", ""],  # failed
    [" A@X.IO", "a-last", "A2"],
    ["c@x.io", "c", "C"],
    ["pre@x.io", "updated", "P"],  # an update of a contact the workspace already has
    ["", "no email", ""],  # failed
]


def scheduled(history: Any) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


async def _import(
    client: Client, settings: Any, tenant: Tenant, owner: asyncpg.Pool, queue: str
) -> tuple[dict[str, Any], Any]:
    await owner.execute(
        "INSERT INTO contacts (workspace_id, email, first_name)"
        " VALUES ($1::uuid, 'pre@x.io', 'old')",
        tenant.workspace_id,
    )
    async with running_worker(client, settings, queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, csv_bytes(ROWS))
        handle = await confirm_import(
            client, services.pool, settings, tenant.workspace_id, up.import_id
        )
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
        history = await handle.fetch_history()
    return result, history


def _counts(r: dict[str, Any]) -> tuple[int, ...]:
    return (r["total_rows"], r["inserted"], r["updated"], r["failed"], r["duplicates"])


async def test_small_file_is_one_activity_and_exact(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue, import_sub_batch_rows=3)
    result, history = await _import(client, settings, tenant, owner_pool, task_queue)
    assert [t for t, _ in local_activities(history)] == [
        "claim-import", "request-slot-now", "import-small", "finalize", "release-slot",
    ]  # fmt: skip
    # No chunker, no process-batch: only the emails, after the slot's release, through the
    # task queue (they may wait for the provider).
    assert scheduled(history) == ["send-import-emails"]
    # 7 rows: a@ twice (one duplicate), two without a valid email, pre@ updated.
    assert _counts(result) == (7, 3, 1, 2, 1)
    got = await contacts(owner_pool, tenant.workspace_id)
    assert {e: (c["first_name"], c["company"]) for e, c in got.items()} == {
        "a@x.io": ("a-last", "A2"),
        "b@x.io": ("b", "B"),
        "c@x.io": ("c", "C"),
        "pre@x.io": ("updated", "P"),
    }
    assert [s["row"] for s in result["error_samples"]] == [4, 8]


# Off, or the file over the byte bound (a few rows can still be a large file).
@pytest.mark.parametrize("limit", [{"import_inline_max_rows": 0}, {"import_inline_max_bytes": 10}])
async def test_same_result_as_the_chunker_path(
    client: Client,
    stack: Stack,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    task_queue: str,
    limit: dict[str, int],
) -> None:
    settings = make_settings(
        stack, temporal_task_queue=task_queue, import_sub_batch_rows=3, **limit
    )
    result, history = await _import(client, settings, tenant, owner_pool, task_queue)
    assert "download-and-chunk" in scheduled(history)
    assert "import-small" not in [t for t, _ in local_activities(history)]
    assert _counts(result) == (7, 3, 1, 2, 1)
    assert [s["row"] for s in result["error_samples"]] == [4, 8]


async def test_import_small_crash_after_a_commit_is_retried_exactly(
    client: Client,
    stack: Stack,
    tenant: Tenant,
    owner_pool: asyncpg.Pool,
    task_queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first attempt dies after its first sub-batch committed: the retry parses the
    file again and the ledger skips that sub-batch, so nothing is counted twice."""
    original = ImportActivities._sub_batch
    calls: list[tuple[int, int]] = []

    async def crashing(self: ImportActivities, job: Any, mapper: Any, batch: int, *a: Any) -> None:
        await original(self, job, mapper, batch, *a)
        attempt = activity.info().attempt
        calls.append((attempt, batch))
        if attempt == 1 and batch == 0:
            raise RuntimeError("worker lost after the commit")

    monkeypatch.setattr(ImportActivities, "_sub_batch", crashing)
    settings = make_settings(stack, temporal_task_queue=task_queue, import_sub_batch_rows=3)
    result, history = await _import(client, settings, tenant, owner_pool, task_queue)
    assert ("import-small", 2) in local_activities(history)
    # Attempt 2 ran every sub-batch again; the ledger made the first one a no-op.
    assert calls == [(1, 0), (2, 0), (2, 1), (2, 2)]
    assert _counts(result) == (7, 3, 1, 2, 1)
    assert len(await contacts(owner_pool, tenant.workspace_id)) == 4
