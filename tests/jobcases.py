"""Per job: how to prepare one run against real tables and what its result must show.

Shared by the CLI contract tests and the dispatch tests; a job's case is used once its
workflow is registered in worker.JOBS (until then those tests skip).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from folksjobs.services import Services
from tests.conftest import Tenant


@dataclass
class Case:
    """How to prepare one job's run and what its result must show."""

    setup: Callable[[Tenant, asyncpg.Pool, Services], Awaitable[tuple[str, dict[str, Any]]]]
    check: Callable[[dict[str, Any]], None]


async def _welcome(t: Tenant, owner: asyncpg.Pool, s: Services) -> tuple[str, dict[str, Any]]:
    return f"welcome-{t.user_id}-{uuid.uuid4().hex[:6]}", {"user_id": t.user_id}


async def _import(t: Tenant, owner: asyncpg.Pool, s: Services) -> tuple[str, dict[str, Any]]:
    """An uploaded file, pending: the run's claim-import moves it to processing."""
    from tests.importing import upload

    data = b"email,first_name\nann@example.com,Ann\nbob@example.com,Bob\n"
    up = await upload(s, s.settings, t.workspace_id, t.user_id, data, name="contract.csv")
    wid = f"import-{up.import_id}"
    ids = {"import_id": up.import_id, "workspace_id": t.workspace_id, "user_id": t.user_id}
    return wid, ids


async def _export(t: Tenant, owner: asyncpg.Pool, s: Services) -> tuple[str, dict[str, Any]]:
    export_id = str(uuid.uuid4())
    await owner.executemany(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1, $2)",
        [(uuid.UUID(t.workspace_id), f"c{i}@example.com") for i in range(2)],
    )
    await owner.execute(
        "INSERT INTO exports (id, workspace_id, user_id) VALUES ($1, $2, $3)",
        uuid.UUID(export_id), uuid.UUID(t.workspace_id), uuid.UUID(t.user_id),
    )  # fmt: skip
    ids = {"export_id": export_id, "workspace_id": t.workspace_id, "user_id": t.user_id}
    return f"export-{export_id}", ids


async def _digest(t: Tenant, owner: asyncpg.Pool, s: Services) -> tuple[str, dict[str, Any]]:
    return f"weekly-digest-contract-{uuid.uuid4().hex[:8]}", {}


async def _discard(t: Tenant, owner: asyncpg.Pool, s: Services) -> tuple[str, dict[str, Any]]:
    """A pending upload two days old (the sweep then spares the suite's fresh uploads)."""
    from tests.importing import upload

    up = await upload(s, s.settings, t.workspace_id, t.user_id, b"email\nann@example.com\n")
    await owner.execute("UPDATE imports SET created_at = now() - interval '2 days' WHERE id = $1",
                        uuid.UUID(up.import_id))  # fmt: skip
    return f"discard-stale-uploads-contract-{uuid.uuid4().hex[:8]}", {"older_than_seconds": 3600}


def _status(expected: str, **counts: int) -> Callable[[dict[str, Any]], None]:
    def check(result: dict[str, Any]) -> None:
        assert result["status"] == expected, result
        for k, v in counts.items():
            assert result[k] == v, (k, result)

    return check


CASES: dict[str, Case] = {
    "SendWelcome": Case(_welcome, lambda r: _eq(r["backend"], "outbox")),
    "ProcessCsv": Case(_import, _status("completed", total_rows=2, inserted=2)),
    "ProcessExport": Case(_export, _status("completed", row_count=2)),
    "WeeklyDigest": Case(_digest, lambda r: None),
    "DiscardStaleUploads": Case(_discard, lambda r: _eq(r["discarded"] >= 1, True)),
}


def _eq(a: object, b: object) -> None:
    assert a == b
