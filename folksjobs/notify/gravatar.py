"""Gravatar lookups: HEAD {base}/{sha256}?d=404, bounded concurrency, short timeout.

A miss, an error or a timeout is "no avatar", never a failure of the import. Answers are
cached in Redis (hits and misses), so a re-import asks again only after the cache expires.
Only the SHA-256 of the trimmed, lower-cased email leaves the process.
"""

from __future__ import annotations

import asyncio
import hashlib
import time

import aiohttp
from redis.asyncio import Redis

from folksjobs.infra import rediskeys

_MISS = b""
# After this many lookups in a row fail (no network, Gravatar down), stop asking for a
# while: an import must not spend 2 s per row waiting for a service that is not there.
BREAKER_FAILURES = 10
BREAKER_SECONDS = 60.0


def email_hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


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
    ) -> None:
        self.session = session
        self.redis = redis
        self.base_url = base_url.rstrip("/")
        self.enabled = enabled
        self.sem = asyncio.Semaphore(concurrency)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.cache_ttl = cache_ttl
        self.failures = 0
        self.open_until = 0.0

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
        found = await asyncio.gather(*(self._head(hashes[e]) for e in todo))
        pipe = self.redis.pipeline(transaction=False)
        for e, (url, definite) in zip(todo, found, strict=True):
            out[e] = url
            if definite:
                pipe.set(rediskeys.gravatar(hashes[e]), url or _MISS, ex=self.cache_ttl)
        await pipe.execute()
        return out

    async def _head(self, h: str) -> tuple[str | None, bool]:
        """(avatar URL or None, whether the answer is definite enough to cache)."""
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
