"""Duplicate emails within an import: the spec's two rules, decided in file order.

- Within a chunk the LAST row of an email wins (earlier ones are duplicates).
- Across chunks the EARLIER chunk wins: a later chunk's rows of that email are duplicates.

Both are decided by download-and-chunk, which reads the file in order, and written into
each chunk. Chunks can then be processed in any order and in parallel and still give
exactly the sequential result.

The cross-chunk claim lives in Redis (`Claims`), bounded by design: many small sets, not
one big hash. An email's 12-byte digest is split: its first `bits` bits pick a bucket, the
set `import:{id}:seen:{bucket}`, and its last 8 bytes, a signed 64-bit integer, are the
member. `bits` comes from the file's row count, so a bucket holds 256 emails or fewer on
average (`BUCKET_ROWS`), well under `set-max-intset-entries` (512 by default): each set
stays an intset, 8 bytes per email (a big hash cost ~52; bench/results.md, "Redis"). A
SADD that adds nothing means an earlier chunk claimed the email, as chunks claim in file
order (one chunker per import).

Fingerprints are bits + 64 >= 68 bits wide: two distinct emails of an n-email file share
one with probability <= n^2 / 2^(bits + 65), at most n / 2^57 with 2^bits >= n / 256: about
4e-11 for 10M emails (bits 16). The 96-bit digest of the hash this replaced gave ~1e-15;
the trade (a false duplicate once in ~10^10 imports of 10M rows, against ~400 MB of Redis
per such import) is deliberate.

A set has no owner per email, so a chunk claiming again (a retry, a rebuild of lost
chunks) gets the answer its first claim recorded in the hash `import:{id}:claims` (chunk
index -> the positions an earlier chunk owned), which also holds the start marker: a
later chunk that finds it gone knows Redis lost the state mid-way. All the keys of one
import's claim expire at the same instant (`_CLAIM`), so they can only be lost together;
not under an eviction policy, which may take one bucket alone (deploy/README.md: `noeviction`).

An import whose claims started in the one hash of the releases before this one
(`import:{id}:seen-emails`, digest -> first chunk index) keeps that hash to its end.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

from folksjobs.imports.addresses import email_of
from folksjobs.infra import rediskeys

if TYPE_CHECKING:  # the chunker's child process imports this module, never Redis
    from redis.asyncio import Redis


def digest(email: str) -> bytes:
    # 12 bytes: up to 32 bits of bucket and a 64-bit member (Claims); the chunker child
    # computes them, the worker only splits them.
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


# --- the claim across chunks --------------------------------------------------------------

BUCKET_ROWS = 256  # a bucket's mean size at most: far below the intset limit (512)
MIN_BITS, MAX_BITS = 4, 32  # a digest's first 4 bytes pick the bucket


def bucket_bits(total_rows: int) -> int:
    """The fewest bucket bits (from MIN_BITS) that keep the mean bucket <= BUCKET_ROWS."""
    bits = MIN_BITS
    while bits < MAX_BITS and total_rows > BUCKET_ROWS << bits:
        bits += 1
    return bits


def split(digests: Sequence[bytes], bits: int) -> tuple[str, str]:
    """The digests' buckets and members, each comma-separated, in order: two arguments
    for the script, not two per email (twenty thousand arguments cost more to send than
    to claim)."""
    shift = 32 - bits
    pairs = list(struct.iter_unpack(">Iq", b"".join(digests)))
    return ",".join([str(hi >> shift) for hi, _ in pairs]), ",".join([str(m) for _, m in pairs])


# One round trip per chunk, server-side (a chunk's ten thousand emails are not ten
# thousand client commands), and atomic: Redis applies a script whole or not at all, so a
# chunk's claim is never half-recorded. Members and bucket numbers stay strings here (Lua
# numbers are doubles: a 64-bit member would lose bits).
# KEYS[1] the claims hash; ARGV: TTL in ms, chunk index, bits, bucket key prefix, the
# emails' buckets and their members (`split`). Buckets are named here, not in KEYS: one
# Redis, never a cluster, as the chunk pipelines already assume.
_CLAIM = """
local claims, ttl, chunk, bits, prefix = KEYS[1], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local marker = redis.call('HGET', claims, '_')
if not marker then
    if chunk ~= '0' then
        return redis.error_reply('DEDUP_STATE_LOST the import\\'s dedup state is gone')
    end
    -- A fresh start: no bucket of a lost state may outlive its marker.
    for b = 0, 2 ^ tonumber(bits) - 1 do redis.call('DEL', prefix .. b) end
    redis.call('HSET', claims, '_', bits)
    redis.call('PEXPIRE', claims, ttl)
elseif marker ~= bits then
    return redis.error_reply('DEDUP_STATE_LOST the dedup state has ' .. marker .. ' bucket bits')
end
local record = redis.call('HGET', claims, chunk)
if record then
    return record
end
-- Every key expires when the claims hash does (the time is frozen in a script, and PTTL
-- then PEXPIRE keep the same instant): a TTL renewed per bucket would let a bucket no
-- chunk touched for an hour expire under a marker still there, silently.
local left = redis.call('PTTL', claims)
if left < ttl / 2 then
    for b = 0, 2 ^ tonumber(bits) - 1 do redis.call('PEXPIRE', prefix .. b, ttl) end
    redis.call('PEXPIRE', claims, ttl)
    left = ttl
end
local taken, touched, i = {}, {}, 0
local buckets = string.gmatch(ARGV[5], '[^,]+')
for member in string.gmatch(ARGV[6], '[^,]+') do
    local key = prefix .. buckets()
    if redis.call('SADD', key, member) == 0 then
        taken[#taken + 1] = i
    end
    touched[key] = true
    i = i + 1
end
for key in pairs(touched) do
    redis.call('PEXPIRE', key, left)
end
record = table.concat(taken, ',')
redis.call('HSET', claims, chunk, record)
return record
"""

# The releases before: one hash, digest -> first chunk index (re-claims compare the owner).
_CLAIM_HASH = """
local ttl, owner, taken = tonumber(ARGV[1]), ARGV[2], {}
-- The start marker, set by chunk 0 (see _CLAIM).
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


class Claims:
    """One import's claim across chunks, for one run of download-and-chunk."""

    def __init__(self, redis: Redis, import_id: str, bits: int | None, has_state: bool) -> None:
        self.redis = redis
        self.import_id = import_id
        self.bits = bits  # None: the one hash of the releases before
        self.has_state = has_state  # chunk 0 claimed, and Redis still holds what followed

    @classmethod
    async def open(cls, redis: Redis, import_id: str, total_rows: int) -> Claims:
        # An import whose claims began in the old hash keeps it: its decisions so far are
        # there. Once that hash is lost, the rebuild from chunk 0 starts in sets.
        if await redis.hexists(rediskeys.seen_emails(import_id), "_"):
            return cls(redis, import_id, None, True)
        marker = await redis.hget(rediskeys.dedup_claims(import_id), "_")
        if marker is None:
            return cls(redis, import_id, bucket_bits(total_rows), False)
        return cls(redis, import_id, int(marker), True)

    async def claim(self, chunk_index: int, digests: list[bytes], ttl: int) -> list[int]:
        """Claim `digests` for this chunk; returns the positions of those an earlier chunk
        already claimed. The same answer each time the chunk claims."""
        if self.bits is None:
            key = rediskeys.seen_emails(self.import_id)
            taken = await self.redis.eval(_CLAIM_HASH, 1, key, ttl, str(chunk_index), *digests)
            return [int(i) for i in taken]
        record = await self.redis.eval(
            _CLAIM,
            1,
            rediskeys.dedup_claims(self.import_id),
            ttl * 1000,
            chunk_index,
            self.bits,
            rediskeys.seen_bucket_prefix(self.import_id),
            *split(digests, self.bits),
        )
        return [int(i) for i in record.split(b",")] if record else []
