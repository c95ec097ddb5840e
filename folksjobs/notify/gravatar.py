"""Gravatar lookups: HEAD {base}/{sha256}?d=404, short timeout, answers cached in Redis.

200 is an avatar, 404 is none: both are cached (hits and misses) for the cache TTL. An
error, a timeout, a 5xx or a 429 is "ask again later", never a cached miss. Only the
SHA-256 of the trimmed, lower-cased email leaves the process.

Three things are shared by every worker through Redis, because the limits are the
cluster's, not a process's:
- the cache (`gravatar:<hash>`), so a re-import inside the TTL asks nothing;
- a claim per address being asked (`gravatar-asking:<hash>`, expiring), so two jobs that
  reach the same address at once ask it once: the second waits for the first's answer;
- the pause (`gravatar-paused:<service>`): set for Retry-After on a 429, and for the
  breaker's time after `breaker_failures` failed lookups in a row; every worker stops
  asking.
The request rate itself is the avatars task queue's (workflows/enrich_avatars.py).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from redis.asyncio import Redis

from folksjobs.infra import rediskeys

_MISS = b""
# The inline lookup (runs started before the avatars job, see ChunkJob.avatars) keeps its
# own per-process breaker, as it always had.
BREAKER_FAILURES = 10
BREAKER_SECONDS = 60.0
# A Retry-After beyond this is not believed (a clock skew, a typo): the breaker's pause.
MAX_RETRY_AFTER = 3600.0


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass
class Lookups:
    """What `Gravatar.lookup` found for a list of emails, by position in the list."""

    answers: dict[int, str | None] = field(default_factory=dict)  # avatar URL or None
    asked: int = 0  # requests sent
    used: int = 0  # of the budget: addresses asked, or claimed by another job meanwhile
    deferred: int = 0  # no answer yet: being asked elsewhere, or Gravatar did not answer
    considered: int = 0  # the emails before this position were all dealt with
    retry_after: float = 0.0  # > 0: nobody may ask for this long


class Gravatar:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        redis: Redis,
        base_url: str,
        *,
        enabled: bool,
        concurrency: int,
        timeout: float,
        cache_ttl: int,
        rate: float = 100.0,
        breaker_failures: int = BREAKER_FAILURES,
        breaker_seconds: float = BREAKER_SECONDS,
    ) -> None:
        self.session = session
        self.redis = redis
        self.base_url = base_url.rstrip("/")
        self.service = hashlib.sha256(self.base_url.encode()).hexdigest()[:12]
        self.enabled = enabled
        self.concurrency = concurrency
        self.sem = asyncio.Semaphore(concurrency)
        self.timeout_s = timeout
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cache_ttl = cache_ttl
        self.rate = rate
        self.breaker_failures = breaker_failures
        self.breaker_seconds = breaker_seconds
        self.failures = 0
        self.open_until = 0.0

    # --- the avatars job's lookup --------------------------------------------------

    async def paused(self) -> float:
        """Seconds left before anyone may ask Gravatar again (0: ask away)."""
        ms = await self.redis.pttl(rediskeys.gravatar_paused(self.service))
        return ms / 1000 if ms and ms > 0 else 0.0

    async def lookup(self, emails: list[str], budget: int) -> Lookups:
        """Answers for `emails`, in order: cached ones at once, the others by asking
        Gravatar, at most `budget` requests paced at `rate` a second. Stops at the email
        that would need request budget+1 (`considered`), or at a 429 or an open breaker."""
        out = Lookups()
        hashes = [email_hash(e) for e in emails]
        cached = await self.redis.mget([rediskeys.gravatar(h) for h in hashes]) if hashes else []
        todo: list[int] = []
        out.considered = len(emails)
        for i, c in enumerate(cached):
            if c is not None:
                out.answers[i] = (c.decode() if isinstance(c, bytes) else c) or None
            elif len(todo) < budget:
                todo.append(i)
            else:
                out.considered = i
                break
        out.used = len(todo)
        if not todo:
            return out
        return await self._claim_and_ask(hashes, todo, out)

    async def _claim_and_ask(self, hashes: list[str], todo: list[int], out: Lookups) -> Lookups:
        """Ask about the addresses no other job is asking right now (each claimed in Redis
        for as long as this call can take); the others are deferred to a later pass."""
        # The claim lasts as long as this call can: the pacing, the last timeout, a margin.
        hold_ms = int((len(todo) / self.rate + self.timeout_s + 5) * 1000)
        token = uuid.uuid4().hex
        pipe = self.redis.pipeline(transaction=False)
        for i in todo:
            pipe.set(rediskeys.gravatar_asking(hashes[i]), token, nx=True, px=hold_ms)
        claimed = [i for i, ok in zip(todo, await pipe.execute(), strict=True) if ok]
        out.deferred = len(todo) - len(claimed)
        try:
            # Another job may have answered and let go between our read and our claim.
            keys = [rediskeys.gravatar(hashes[i]) for i in claimed]
            late = await self.redis.mget(keys) if keys else []
            for i, c in zip(claimed, late, strict=True):
                if c is not None:
                    out.answers[i] = (c.decode() if isinstance(c, bytes) else c) or None
            mine = [i for i in claimed if i not in out.answers]
            found = await self._ask_paced([hashes[i] for i in mine], out)
            pipe = self.redis.pipeline(transaction=False)
            for i, (url, definite) in zip(mine, found, strict=True):
                if definite:
                    out.answers[i] = url
                    pipe.set(rediskeys.gravatar(hashes[i]), url or _MISS, ex=self.cache_ttl)
                else:
                    out.deferred += 1
            await pipe.execute()
        finally:
            # After the cache is written: whoever waited on a claim finds the answer.
            await self._release(token, [hashes[i] for i in claimed])
        return out

    async def _ask_paced(self, hashes: list[str], out: Lookups) -> list[tuple[str | None, bool]]:
        """One HEAD per hash, the k-th started k/rate s after the first: on its own, one
        call never goes faster than the cluster's rate. Redis is told once, at the end
        (or at the first 429 or the breaker's limit, which stop the asking)."""
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(self.concurrency)
        halted = asyncio.Event()
        run = _Run()
        start = loop.time()

        async def one(h: str) -> tuple[str | None, bool]:
            try:
                if halted.is_set():
                    return None, False
                out.asked += 1
                answer, throttled = await self._head(h)
                if throttled is not None:
                    run.wait = max(run.wait, throttled)
                    halted.set()
                elif answer[1]:
                    run.ok, run.in_a_row = run.ok + 1, 0
                else:
                    run.failed, run.in_a_row = run.failed + 1, run.in_a_row + 1
                    if run.in_a_row >= self.breaker_failures:
                        halted.set()
                return answer
            finally:
                sem.release()

        tasks: list[asyncio.Task[tuple[str | None, bool]]] = []
        for k, h in enumerate(hashes):
            delay = start + k / self.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            if halted.is_set():
                sem.release()
                break
            tasks.append(asyncio.create_task(one(h)))
        found = list(await asyncio.gather(*tasks))
        found += [(None, False)] * (len(hashes) - len(found))
        out.retry_after = await self._settle(run)
        return found

    async def _head(self, h: str) -> tuple[tuple[str | None, bool], float | None]:
        """((avatar URL or None, definite), Retry-After seconds when throttled)."""
        url = f"{self.base_url}/{h}"
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.head(f"{url}?d=404", timeout=self.timeout) as resp:
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError):
            return (None, False), None
        if status == 429:
            return (None, False), _retry_after_seconds(retry_after, self.breaker_seconds)
        if status in (200, 404):
            return (url if status == 200 else None, True), None
        return (None, False), None  # a 5xx: ask again later

    async def _settle(self, run: _Run) -> float:
        """The batch's news for every worker: a 429's pause, or failures added to the count
        of failures in a row (the breaker opens at the limit; any answer resets it).
        Returns how long nobody may ask now (0: go on)."""
        key = rediskeys.gravatar_failures(self.service)
        if run.wait:
            await self._pause(run.wait)
            return run.wait
        if run.ok and not run.in_a_row:
            await self.redis.delete(key)
            return 0.0
        if not run.in_a_row:
            return 0.0
        pipe = self.redis.pipeline(transaction=True)
        if run.ok:  # answers came, then failures: the count starts again from those
            pipe.set(key, run.in_a_row, ex=int(self.breaker_seconds) + 1)
        else:
            pipe.incrby(key, run.in_a_row)
            pipe.expire(key, int(self.breaker_seconds) + 1)
        n = int((await pipe.execute())[0] or run.in_a_row)
        if max(n, run.in_a_row) < self.breaker_failures:
            return 0.0
        await self.redis.delete(key)
        await self._pause(self.breaker_seconds)
        return self.breaker_seconds

    async def _pause(self, seconds: float) -> None:
        key = rediskeys.gravatar_paused(self.service)
        await self.redis.set(key, 1, px=max(1, int(seconds * 1000)))

    async def _release(self, token: str, hashes: list[str]) -> None:
        if not hashes:
            return
        # Only our own claims: one that expired and was taken by another job stays its.
        keys = [rediskeys.gravatar_asking(h) for h in hashes]
        held = await self.redis.mget(keys)
        mine = [k for k, v in zip(keys, held, strict=True) if v in (token, token.encode())]
        if mine:
            await self.redis.delete(*mine)

    # --- the inline lookup, for import runs started before the avatars job ----------

    async def avatars(self, emails: list[str]) -> dict[str, str | None]:
        if not self.enabled or not emails:
            return {}
        hashes = {e: email_hash(e) for e in emails}
        cached = await self.redis.mget([rediskeys.gravatar(h) for h in hashes.values()])
        out: dict[str, str | None] = {}
        todo: list[str] = []
        for e, c in zip(emails, cached, strict=True):
            if c is None:
                todo.append(e)
            else:
                out[e] = (c.decode() if isinstance(c, bytes) else c) or None
        found = await asyncio.gather(*(self._head_inline(hashes[e]) for e in todo))
        pipe = self.redis.pipeline(transaction=False)
        for e, (url, definite) in zip(todo, found, strict=True):
            out[e] = url
            if definite:
                pipe.set(rediskeys.gravatar(hashes[e]), url or _MISS, ex=self.cache_ttl)
        await pipe.execute()
        return out

    async def _head_inline(self, h: str) -> tuple[str | None, bool]:
        url = f"{self.base_url}/{h}"
        async with self.sem:
            if time.monotonic() < self.open_until:
                return None, False
            try:
                async with asyncio.timeout(self.timeout.total):
                    async with self.session.head(f"{url}?d=404", timeout=self.timeout) as resp:
                        status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                self.failures += 1
                if self.failures >= BREAKER_FAILURES:
                    self.open_until = time.monotonic() + BREAKER_SECONDS
                return None, False
            self.failures = 0
            if status == 200:
                return url, True
            return None, status == 404


@dataclass
class _Run:
    """One batch's answers: definite ones, failures (and the last ones in a row), the
    longest Retry-After of a 429."""

    ok: int = 0
    failed: int = 0
    in_a_row: int = 0
    wait: float = 0.0


def _retry_after_seconds(value: str | None, default: float) -> float:
    """Retry-After as delta-seconds or an HTTP date (RFC 9110 10.2.3); `default` otherwise."""
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.1), MAX_RETRY_AFTER)
