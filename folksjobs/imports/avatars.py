"""The avatars an import owes: contacts.avatar_pending, its one owner of state changes.

An import's upsert sets `avatar_pending` to the import's id on every contact it writes
(contacts.upsert's `avatar_owner`), with Gravatar on. The avatars job reads those contacts
and writes each answer back with the same statement that clears the mark. Invariants:
- An answer is written only while the contact still has the email it was looked up for
  AND still owes it to this import: a later import (or an edit) that changed the contact
  took the lookup over, and a stale answer is dropped rather than written over it.
- Rows the import is writing at this moment are skipped (SKIP LOCKED), never waited for:
  the import's upsert locks in email order, this write in none, so waiting could deadlock
  the two. A skipped row stays owed; its answer is in the cache for the next pass.
"""

from __future__ import annotations

import asyncpg

from folksjobs.infra.db import tenant_tx

_OWED = """
SELECT id, email FROM contacts
WHERE avatar_pending = $1::uuid AND id > $2 AND id % $3 = $4
ORDER BY id LIMIT $5
"""

_WRITE = """
WITH mine AS (
    SELECT c.id FROM contacts c
    WHERE c.id = ANY($2::bigint[]) AND c.avatar_pending = $1::uuid
    FOR UPDATE SKIP LOCKED
)
UPDATE contacts c SET
    -- 404 keeps an avatar the contact already has, as the import's upsert always did.
    avatar_url = COALESCE(u.url, c.avatar_url),
    avatar_pending = NULL,
    updated_at = CASE WHEN u.url IS DISTINCT FROM c.avatar_url AND u.url IS NOT NULL
                      THEN now() ELSE c.updated_at END
FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(id, email, url), mine
WHERE c.id = mine.id AND c.id = u.id AND c.email = u.email AND c.avatar_pending = $1::uuid
"""


async def owed(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    *,
    lane: int,
    lanes: int,
    after_id: int,
    limit: int,
) -> list[tuple[int, str]]:
    """(contact id, email) the import owes a lookup, in id order after `after_id`, of one
    lane (id % lanes): lanes of one import never read the same contact."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(_OWED, import_id, after_id, lanes, lane, limit)
    return [(r["id"], r["email"]) for r in rows]


async def write(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    found: list[tuple[int, str, str | None]],
) -> int:
    """Write (contact id, email looked up, avatar URL or None); returns how many were
    written (the others changed hands or email meanwhile, or are being imported)."""
    if not found:
        return 0
    ids, emails, urls = (list(c) for c in zip(*found, strict=True))
    async with tenant_tx(pool, workspace_id) as conn:
        status = await conn.execute(_WRITE, import_id, ids, emails, urls)
    return int(status.split()[-1])


async def owed_count(pool: asyncpg.Pool, workspace_id: str, import_id: str) -> int:
    async with tenant_tx(pool, workspace_id) as conn:
        n = await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE avatar_pending = $1::uuid", import_id
        )
    return int(n)


async def drop(pool: asyncpg.Pool, workspace_id: str, import_id: str, batch: int = 10_000) -> int:
    """The import was cancelled: it owes nothing any more. In batches, so a million
    owed contacts are not one long transaction; locked in email order, as an import's
    upsert locks them, so the two cannot deadlock."""
    total = 0
    while True:
        async with tenant_tx(pool, workspace_id) as conn:
            status = await conn.execute(
                "UPDATE contacts SET avatar_pending = NULL WHERE id IN ("
                " SELECT id FROM contacts WHERE avatar_pending = $1::uuid"
                " ORDER BY email LIMIT $2 FOR UPDATE)",
                import_id,
                batch,
            )
        n = int(status.split()[-1])
        total += n
        if n < batch:
            return total
