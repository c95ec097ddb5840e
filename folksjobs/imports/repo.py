"""SQL for import records and the per-sub-batch ledger. Every query names its workspace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from folksjobs.infra.db import change_with_file, tenant_tx


@dataclass(frozen=True)
class ImportRow:
    id: str
    workspace_id: str
    user_id: str
    status: str
    file_name: str
    blob_key: str
    encoding: str
    delimiter: str
    sep_line: bool
    headers: list[str]
    column_mapping: list[str]
    total_rows: int
    file_bytes: int
    processed_rows: int
    inserted_rows: int
    updated_rows: int
    unchanged_rows: int
    failed_rows: int
    duplicate_rows: int
    error_samples: list[dict[str, Any]]
    warnings: list[str]
    error_log: dict[str, Any] | None
    ai_summary: str | None
    workflow_id: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> ImportRow:
        d = dict(r)
        d["id"] = str(d["id"])
        d["workspace_id"] = str(d["workspace_id"])
        d["user_id"] = str(d["user_id"])
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


_COLUMNS = """id, workspace_id, user_id, status, file_name, blob_key, encoding, delimiter,
    sep_line, headers, column_mapping, total_rows, file_bytes, processed_rows, inserted_rows,
    updated_rows, unchanged_rows, failed_rows, duplicate_rows, error_samples, warnings,
    error_log, ai_summary, workflow_id, started_at, completed_at, duration_ms"""


async def create(
    pool: asyncpg.Pool,
    *,
    import_id: str,
    workspace_id: str,
    user_id: str,
    file_name: str,
    blob_key: str,
    file_bytes: int,
    encoding: str,
    delimiter: str,
    sep_line: bool,
    headers: list[str],
    mapping: list[str],
    total_rows: int,
    warnings: list[str],
) -> None:
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute(
            """INSERT INTO imports (id, workspace_id, user_id, status, file_name, blob_key,
                   file_bytes, encoding, delimiter, sep_line, headers, column_mapping, total_rows,
                   warnings)
               VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            uuid.UUID(user_id),
            file_name,
            blob_key,
            file_bytes,
            encoding,
            delimiter,
            sep_line,
            headers,
            mapping,
            total_rows,
            warnings,
        )


async def get(pool: asyncpg.Pool, workspace_id: str, import_id: str) -> ImportRow | None:
    async with tenant_tx(pool, workspace_id) as conn:
        r = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM imports WHERE id = $1 AND workspace_id = $2",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
        )
    return ImportRow.from_record(r) if r else None


async def workspace_of(pool: asyncpg.Pool, import_id: str) -> str | None:
    """The workspace an import belongs to, from its id alone (an operator's command).

    Row-level security hides imports of other workspaces from the app role, so this asks
    one workspace at a time; the import id is a UUID, so one answers at most.
    """
    try:
        iid = uuid.UUID(import_id)
    except ValueError:
        return None
    for r in await pool.fetch("SELECT id FROM workspaces ORDER BY id"):
        async with tenant_tx(pool, str(r["id"])) as conn:
            if await conn.fetchval("SELECT 1 FROM imports WHERE id = $1", iid):
                return str(r["id"])
    return None


async def stale_pending(pool: asyncpg.Pool, workspace_id: str, older_than_s: float) -> list[str]:
    """Pending imports of the workspace uploaded more than `older_than_s` seconds ago."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT id FROM imports WHERE workspace_id = $1 AND status = 'pending'"
            " AND created_at < now() - make_interval(secs => $2) ORDER BY created_at",
            uuid.UUID(workspace_id),
            float(older_than_s),
        )
    return [str(r["id"]) for r in rows]


async def discard_pending(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    delete_file: Callable[[str], Awaitable[None]],
) -> bool:
    """Delete a pending import and its file; False when it is not pending (any more).

    The file goes inside the transaction: when it cannot be deleted the record stays,
    and the next attempt finds both again. A confirmation racing this one either sees
    no row or waits for the row lock and finds it no longer pending.
    """
    return await change_with_file(
        pool,
        workspace_id,
        delete_file,
        "DELETE FROM imports WHERE id = $1 AND workspace_id = $2 AND status = 'pending'"
        " RETURNING blob_key",
        uuid.UUID(import_id),
        uuid.UUID(workspace_id),
    )


async def set_mapping(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, mapping: list[str]
) -> ImportRow | None:
    """A pending import's new mapping: the row as it now is; None when it is not pending."""
    async with tenant_tx(pool, workspace_id) as conn:
        r = await conn.fetchrow(
            f"""UPDATE imports SET column_mapping = $3
               WHERE id = $1 AND workspace_id = $2 AND status = 'pending' RETURNING {_COLUMNS}""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            mapping,
        )
    return ImportRow.from_record(r) if r else None


async def claim(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, workflow_id: str
) -> ImportRow | None:
    """pending -> processing for `workflow_id`, when an email column is mapped; the row as
    it now is, or None when nothing moved (only `lifecycle.claim` calls this)."""
    async with tenant_tx(pool, workspace_id) as conn:
        r = await conn.fetchrow(
            f"""UPDATE imports SET status = 'processing', workflow_id = $3, started_at = now()
               WHERE id = $1 AND workspace_id = $2 AND status = 'pending'
                 AND column_mapping ? 'email'
               RETURNING {_COLUMNS}""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            workflow_id,
        )
    return ImportRow.from_record(r) if r else None


async def complete_chunks(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, only: int | None = None
) -> set[int]:
    """The chunks whose every row is committed in the ledger (`only`: of that chunk)."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT chunk_index FROM import_batches WHERE import_id = $1 AND workspace_id = $2"
            " AND ($3::integer IS NULL OR chunk_index = $3)"
            " GROUP BY chunk_index HAVING sum(rows) = max(chunk_rows)",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            only,
        )
    return {r["chunk_index"] for r in rows}


async def batch_done(conn: asyncpg.Connection, import_id: str, chunk: int, batch: int) -> bool:
    # Serialises two attempts of the same sub-batch (a stalled worker resumed while a
    # retry runs): the second waits here, then finds the first one's ledger row.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, $2))", import_id, chunk * 100_003 + batch
    )
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM import_batches WHERE import_id = $1 AND chunk_index = $2"
            " AND batch_index = $3",
            uuid.UUID(import_id),
            chunk,
            batch,
        )
    )


async def record_batch(
    conn: asyncpg.Connection,
    *,
    import_id: str,
    workspace_id: str,
    chunk: int,
    batch: int,
    chunk_rows: int,
    rows: int,
    inserted: int,
    updated: int,
    unchanged: int,
    failed: int,
    duplicates: int,
    samples: list[dict[str, Any]],
) -> None:
    # One statement: the ledger row, and progress set from the ledger (never incremented,
    # so a retry cannot inflate it). A sub-batch that finds the import's row locked by a
    # concurrent sub-batch skips the progress update instead of queueing behind that
    # transaction; the next update counts its rows, and finalize sets the exact figures.
    await conn.execute(
        """WITH b AS (
               INSERT INTO import_batches (import_id, chunk_index, batch_index, workspace_id,
                   chunk_rows, rows, inserted, updated, unchanged, failed, duplicates,
                   error_samples)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           )
           UPDATE imports SET processed_rows = GREATEST(processed_rows,
               (SELECT COALESCE(sum(rows), 0) FROM import_batches WHERE import_id = $1) + $6)
           WHERE id = (SELECT id FROM imports WHERE id = $1 AND workspace_id = $4
                       FOR UPDATE SKIP LOCKED)""",
        uuid.UUID(import_id),
        chunk,
        batch,
        uuid.UUID(workspace_id),
        chunk_rows,
        rows,
        inserted,
        updated,
        unchanged,
        failed,
        duplicates,
        samples,
    )


@dataclass(frozen=True)
class Totals:
    """An import's counts from its ledger: rows = inserted + updated + unchanged + failed +
    duplicates. `unchanged`: the contact was stored exactly as the row would leave it, and
    was not written (0 in ledger rows from before it was counted: those were `updated`)."""

    rows: int
    inserted: int
    updated: int
    unchanged: int
    failed: int
    duplicates: int

    @property
    def contacts(self) -> int:
        """Rows that left a contact, each owed its avatar lookup (unchanged ones too)."""
        return self.inserted + self.updated + self.unchanged


async def totals(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, chunk: int | None = None
) -> Totals:
    async with tenant_tx(pool, workspace_id) as conn:
        r = await conn.fetchrow(
            """SELECT COALESCE(sum(rows), 0)::int AS rows, COALESCE(sum(inserted), 0)::int AS ins,
                      COALESCE(sum(updated), 0)::int AS upd, COALESCE(sum(failed), 0)::int AS fail,
                      COALESCE(sum(duplicates), 0)::int AS dup,
                      COALESCE(sum(unchanged), 0)::int AS same
               FROM import_batches
               WHERE import_id = $1 AND workspace_id = $2
                 AND ($3::int IS NULL OR chunk_index = $3)""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            chunk,
        )
    assert r is not None
    return Totals(r["rows"], r["ins"], r["upd"], r["same"], r["fail"], r["dup"])


async def first_error_samples(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, limit: int
) -> list[dict[str, Any]]:
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            """SELECT s FROM import_batches b, jsonb_array_elements(b.error_samples) s
               WHERE b.import_id = $1 AND b.workspace_id = $2
               ORDER BY (s->>'row')::int LIMIT $3""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            limit,
        )
    return [r["s"] for r in rows]


async def complete(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    t: Totals,
    samples: list[dict[str, Any]],
    summary: str,
    duration_ms: int,
) -> None:
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute(
            """UPDATE imports SET status = 'completed', processed_rows = $3, inserted_rows = $4,
                   updated_rows = $5, failed_rows = $6, duplicate_rows = $7, error_samples = $8,
                   ai_summary = $9, completed_at = COALESCE(completed_at, now()), duration_ms = $10,
                   unchanged_rows = $11
               WHERE id = $1 AND workspace_id = $2""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            t.rows,
            t.inserted,
            t.updated,
            t.failed,
            t.duplicates,
            samples,
            summary,
            duration_ms,
            t.unchanged,
        )


async def end(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, status: str, error: dict[str, Any] | None
) -> None:
    """failed / cancelled, with the ledger's counts so far; a completed import stays so."""
    t = await totals(pool, workspace_id, import_id)
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute(
            """UPDATE imports SET status = $3, error_log = $4, processed_rows = $5,
                   inserted_rows = $6, updated_rows = $7, failed_rows = $8, duplicate_rows = $9,
                   unchanged_rows = $10, completed_at = now(),
                   duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint
               WHERE id = $1 AND workspace_id = $2 AND status <> 'completed'""",
            uuid.UUID(import_id),
            uuid.UUID(workspace_id),
            status,
            json.loads(json.dumps(error)) if error else None,
            t.rows,
            t.inserted,
            t.updated,
            t.failed,
            t.duplicates,
            t.unchanged,
        )


# --- retention (expire-files) ------------------------------------------------------------


async def expired_uploads(pool: asyncpg.Pool, workspace_id: str, older_than_s: float) -> list[str]:
    """Imports of the workspace that ended more than `older_than_s` seconds ago and still
    have their uploaded file."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT id FROM imports WHERE workspace_id = $1"
            " AND status IN ('completed', 'failed', 'cancelled') AND file_deleted_at IS NULL"
            " AND completed_at < now() - make_interval(secs => $2) ORDER BY completed_at",
            uuid.UUID(workspace_id),
            float(older_than_s),
        )
    return [str(r["id"]) for r in rows]


async def expire_upload(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    delete_file: Callable[[str], Awaitable[None]],
) -> bool:
    """Delete an ended import's file and record when; the record, its counts and its error
    samples stay. False when the file was already gone. As in discard_pending, the file
    goes inside the transaction: when it cannot be deleted the record says it is there."""
    return await change_with_file(
        pool,
        workspace_id,
        delete_file,
        "UPDATE imports SET file_deleted_at = now()"
        " WHERE id = $1 AND workspace_id = $2 AND file_deleted_at IS NULL"
        " AND status IN ('completed', 'failed', 'cancelled') RETURNING blob_key",
        uuid.UUID(import_id),
        uuid.UUID(workspace_id),
    )


async def notify_on_complete(pool: asyncpg.Pool, workspace_id: str) -> bool:
    """The workspace's notify_on_import_complete; no settings row means the schema's
    default, which is on."""
    async with tenant_tx(pool, workspace_id) as conn:
        notify = await conn.fetchval(
            "SELECT notify_on_import_complete FROM workspace_settings WHERE workspace_id = $1",
            uuid.UUID(workspace_id),
        )
    return notify is not False
