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
from typing import TYPE_CHECKING

from folksjobs.imports.addresses import email_of

if TYPE_CHECKING:  # the chunker's child process imports this module, never Redis
    from redis.asyncio import Redis


def digest(email: str) -> bytes:
    # 12 bytes keep the hash small (millions of emails) with no practical collisions.
    return hashlib.blake2b(email.encode(), digest_size=12).digest()


def last_wins(
    cells: Sequence[list[str] | None],
    first_row: int,
    email_columns: list[int],
    allow_test: bool = False,
) -> tuple[list[int], dict[bytes, int], list[str | None]]:
    """For a chunk's records (rows first_row, first_row + 1, ...; None: a malformed one):
    (rows superseded inside the chunk, digest -> the chunk's last row carrying it, each
    record's normalised email or None when it is not valid). The emails travel with the
    chunk, so process-batch does not normalise and check them again."""
    last: dict[bytes, int] = {}
    superseded: list[int] = []
    emails: list[str | None] = []
    for row, c in enumerate(cells, first_row):
        email = None if c is None else email_of(c, email_columns, allow_test)
        emails.append(email)
        if email is not None:
            d = digest(email)
            if (earlier := last.get(d)) is not None:
                superseded.append(earlier)
            last[d] = row
    return superseded, last, emails


# One round trip per chunk: claim every email the chunk carries and report (by position)
# those an earlier chunk already owns. Server-side, so a million emails are not a million
# client commands.
_CLAIM = """
local ttl, owner, taken = tonumber(ARGV[1]), ARGV[2], {}
-- The hash carries a start marker set by chunk 0: a later chunk that finds it gone knows
-- Redis lost the import's state mid-way, and must not decide duplicates from an empty hash.
if owner == '0' then
    redis.call('HSET', KEYS[1], '_', '1')
elseif redis.call('HEXISTS', KEYS[1], '_') == 0 then
    return redis.error_reply('DEDUP_STATE_LOST')
end
for i = 3, #ARGV do
    local cur = redis.call('HGET', KEYS[1], ARGV[i])
    if not cur then
        redis.call('HSET', KEYS[1], ARGV[i], owner)
    elseif cur ~= owner then
        taken[#taken + 1] = i - 3
    end
end
redis.call('EXPIRE', KEYS[1], ttl)
return taken
"""


async def claim(redis: Redis, key: str, chunk_index: int, digests: list[bytes],
                ttl: int) -> list[int]:  # fmt: skip
    """Claim `digests` for this chunk; returns the positions of those an earlier chunk
    already owns."""
    return [int(i) for i in await redis.eval(_CLAIM, 1, key, ttl, str(chunk_index), *digests)]


async def has_state(redis: Redis, key: str) -> bool:
    """The hash still has chunk 0's start marker: the claims of earlier chunks are there."""
    return bool(await redis.hexists(key, "_"))
