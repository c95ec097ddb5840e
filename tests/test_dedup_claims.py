"""The claim across chunks in Redis (folksjobs/imports/dedup.py): small sets that stay
intsets, the same answer each time a chunk claims, a lost state noticed, all keys of one
import expiring together, and an import begun in the old hash kept in it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from folksjobs.devtools.devstack import EmbeddedValkey
from folksjobs.imports import dedup
from folksjobs.infra import rediskeys

TTL = 3600


@pytest.fixture(scope="module")
async def redis(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Redis]:
    vk = EmbeddedValkey(Path(tmp_path_factory.mktemp("dedup")) / "valkey")
    vk.start(persist=False)
    r = Redis.from_url(vk.url)
    try:
        yield r
    finally:
        await r.aclose()
        vk.stop()


def chunks(n_chunks: int, size: int, distinct: int) -> list[list[bytes]]:
    """Chunks of `size` distinct emails, windows of `distinct` overlapping chunk to chunk."""
    return [
        [dedup.digest(f"e{(c * size * 2 // 3 + j) % distinct}@example.com") for j in range(size)]
        for c in range(n_chunks)
    ]


def expected(all_chunks: list[list[bytes]]) -> list[list[int]]:
    first: dict[bytes, int] = {}
    answers = []
    for c, ds in enumerate(all_chunks):
        answers.append([p for p, d in enumerate(ds) if first.setdefault(d, c) != c])
    return answers


async def test_claims_are_exact_compact_and_the_same_when_claimed_again(redis: Redis) -> None:
    import_id = str(uuid.uuid4())
    data = chunks(12, 500, 3_000)
    rows = sum(map(len, data))
    claims = await dedup.Claims.open(redis, import_id, rows)
    assert (claims.bits, claims.has_state) == (dedup.bucket_bits(rows), False)
    got = [await claims.claim(c, ds, TTL) for c, ds in enumerate(data)]
    assert got == expected(data)
    assert any(got[1:])
    # A retry from chunk 5 (the earlier chunks' claims are kept), and a rebuild from 0.
    again = await dedup.Claims.open(redis, import_id, rows)
    assert (again.bits, again.has_state) == (claims.bits, True)
    assert [await again.claim(c, data[c], TTL) for c in range(5, 12)] == got[5:]
    assert [await again.claim(c, ds, TTL) for c, ds in enumerate(data)] == got
    # Small sets: each an intset, 8 bytes an email (and ~1 KB per bucket at worst here).
    keys = [k async for k in redis.scan_iter(match=rediskeys.seen_bucket_prefix(import_id) + "*")]
    assert claims.bits is not None and 0 < len(keys) <= 2**claims.bits
    assert {await redis.object("encoding", k) for k in keys} == {b"intset"}
    assert sum([await redis.scard(k) for k in keys]) == 3_000


async def test_every_key_expires_at_the_same_instant(redis: Redis) -> None:
    import_id = str(uuid.uuid4())
    claims = await dedup.Claims.open(redis, import_id, 2_000)
    data = chunks(4, 300, 1_000)
    for c, ds in enumerate(data):
        await claims.claim(c, ds, TTL)
    prefix = rediskeys.seen_bucket_prefix(import_id)
    keys = [rediskeys.dedup_claims(import_id)] + [k async for k in redis.scan_iter(prefix + "*")]
    assert len({await redis.pexpiretime(k) for k in keys}) == 1
    # Past half its TTL, the next claim renews every key at once.
    await redis.pexpire(rediskeys.dedup_claims(import_id), TTL * 1000 // 3)
    for k in keys[1:]:
        await redis.pexpire(k, TTL * 1000 // 3)
    await claims.claim(4, chunks(1, 300, 5_000)[0], TTL)
    keys = [rediskeys.dedup_claims(import_id)] + [k async for k in redis.scan_iter(prefix + "*")]
    times = {await redis.pexpiretime(k) for k in keys}
    assert len(times) == 1 and times.pop() > (await redis.time())[0] * 1000 + TTL * 500


async def test_a_lost_state_is_noticed_and_rebuilt_from_chunk_0(redis: Redis) -> None:
    import_id = str(uuid.uuid4())
    data = chunks(6, 200, 700)
    claims = await dedup.Claims.open(redis, import_id, 1_200)
    got = [await claims.claim(c, ds, TTL) for c, ds in enumerate(data[:3])]
    await redis.delete(rediskeys.dedup_claims(import_id))  # the marker goes, buckets stay
    with pytest.raises(ResponseError, match="DEDUP_STATE_LOST"):
        await claims.claim(3, data[3], TTL)
    rebuilt = await dedup.Claims.open(redis, import_id, 1_200)
    assert not rebuilt.has_state
    # Chunk 0 starts afresh: the buckets left behind do not count as earlier claims.
    assert [await rebuilt.claim(c, ds, TTL) for c, ds in enumerate(data)] == expected(data)
    assert got == expected(data)[:3]


async def test_an_import_begun_in_the_old_hash_keeps_it(redis: Redis) -> None:
    import_id = str(uuid.uuid4())
    data = chunks(6, 200, 700)
    old = dedup.Claims(redis, import_id, None, False)  # the releases before
    first = [await old.claim(c, ds, TTL) for c, ds in enumerate(data[:3])]
    claims = await dedup.Claims.open(redis, import_id, 1_200)
    assert (claims.bits, claims.has_state) == (None, True)
    rest = [await claims.claim(c, ds, TTL) for c, ds in enumerate(data[2:], 2)]
    assert first + rest[1:] == expected(data)
    assert not [k async for k in redis.scan_iter(rediskeys.seen_bucket_prefix(import_id) + "*")]


def test_buckets_hold_256_emails_or_fewer_on_average() -> None:
    assert dedup.bucket_bits(10) == dedup.MIN_BITS
    for rows in (10_000, 1_000_000, 10_000_000):
        bits = dedup.bucket_bits(rows)
        assert rows / 2**bits <= dedup.BUCKET_ROWS < rows / 2 ** (bits - 1)
    assert dedup.bucket_bits(10_000_000) == 16
