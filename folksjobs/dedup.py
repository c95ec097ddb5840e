"""Duplicate emails within an import: the spec's two rules, decided in file order.

- Within a chunk the LAST row of an email wins (earlier ones are duplicates).
- Across chunks the EARLIER chunk wins: a later chunk's rows of that email are duplicates.

Both are decided by download-and-chunk, which reads the file in order, and written into
each chunk. Chunks can then be processed in any order and in parallel and still give
exactly the sequential result. The cross-chunk owner of an email lives in the Redis hash
import:{id}:seen-emails (email digest -> first chunk index); HSETNX keeps the first owner,
so re-running the chunking (a retry, or rebuilding lost chunks) gives the same answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from redis.asyncio import Redis

from folksjobs.contacts import email_of
from folksjobs.csvstream import Record


def digest(email: str) -> bytes:
    # 12 bytes keep the hash small (millions of emails) with no practical collisions.
    return hashlib.blake2b(email.encode(), digest_size=12).digest()


def last_wins(
    records: Sequence[Record], email_index: int
) -> tuple[set[int], dict[bytes, list[int]]]:
    """(rows superseded inside the chunk, digest -> rows of the chunk carrying it)."""
    by_digest: dict[bytes, list[int]] = {}
    for rec in records:
        if rec.cells is None:
            continue
        email = email_of(rec.cells, email_index)
        if email is not None:
            by_digest.setdefault(digest(email), []).append(rec.row)
    superseded = {row for rows in by_digest.values() for row in rows[:-1]}
    return superseded, by_digest


async def claim(
    redis: Redis, key: str, chunk_index: int, digests: list[bytes], ttl: int
) -> set[bytes]:
    """Claim `digests` for this chunk; returns those an earlier chunk already owns."""
    if not digests:
        return set()
    pipe = redis.pipeline(transaction=False)
    for d in digests:
        pipe.hsetnx(key, d, chunk_index)
    pipe.expire(key, ttl)
    created = (await pipe.execute())[:-1]
    contested = [d for d, new in zip(digests, created, strict=True) if not new]
    if not contested:
        return set()
    owners = await redis.hmget(key, contested)
    return {
        d
        for d, owner in zip(contested, owners, strict=True)
        if owner is not None and int(owner) != chunk_index
    }
