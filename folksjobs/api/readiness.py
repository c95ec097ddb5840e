"""The API's readiness: its dependencies checked at once, each bounded, the answer cached.

A Kubernetes readiness probe gives the answer two seconds (deploy/k8s/api.yaml). Checks
run concurrently, each within CHECK_TIMEOUT_SECONDS, so one slow dependency costs that
much and not the sum; the answer is kept for CACHE_SECONDS, and probes arriving while a
round runs wait for that round, so a fleet of probes (kubelet, load balancer, a person)
costs the dependencies one round per few seconds per pod. A dependency that does not
answer within its bound makes the pod unready, which is what the probe is for: with
every pod unready the Service has no endpoints, so callers see the outage at once rather
than after their own timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from folksjobs.api.context import Api

log = logging.getLogger("folksjobs.api")

CHECK_TIMEOUT_SECONDS = 1.0
CACHE_SECONDS = 3.0

Check = Callable[[], Awaitable[object]]


class Readiness:
    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        timeout: float = CHECK_TIMEOUT_SECONDS,
        ttl: float = CACHE_SECONDS,
    ) -> None:
        self.checks = dict(checks)
        self.timeout = timeout
        self.ttl = ttl
        self._failed: dict[str, str] = {}
        self._at = float("-inf")
        self._round: asyncio.Task[dict[str, str]] | None = None

    async def _one(self, name: str, check: Check) -> str | None:
        try:
            async with asyncio.timeout(self.timeout):
                await check()
        except Exception as e:
            # The route needs no key: the answer names the dependency, the log the reason.
            log.warning("readyz: %s does not answer: %r", name, e)
            return type(e).__name__
        return None

    async def _run(self) -> dict[str, str]:
        names = list(self.checks)
        results = await asyncio.gather(*(self._one(n, self.checks[n]) for n in names))
        return {n: r for n, r in zip(names, results, strict=True) if r is not None}

    async def _refresh(self) -> dict[str, str]:
        failed = await self._run()
        self._failed, self._at = failed, time.monotonic()
        return failed

    async def failed(self) -> dict[str, str]:
        """The dependencies that did not answer: {name: error type}; empty when ready."""
        if time.monotonic() - self._at < self.ttl:
            return self._failed
        if self._round is None or self._round.done():
            self._round = asyncio.create_task(self._refresh())
        # Shielded: a probe that gives up does not cancel the round others wait for.
        return await asyncio.shield(self._round)

    async def response(self) -> web.Response:
        failed = await self.failed()
        if failed:
            detail = "; ".join(f"{k}: {v}" for k, v in failed.items())
            return web.json_response({"error": "not_ready", "detail": detail}, status=503)
        return web.json_response({"status": "ready", "checks": sorted(self.checks)})


def api_checks(api: Api) -> dict[str, Check]:
    return {
        "postgres": lambda: api.services.pool.fetchval("SELECT 1"),
        "redis": lambda: api.services.redis.ping(),
        "temporal": lambda: api.client.service_client.check_health(),
        "blob": lambda: api.services.blob.size("readyz/probe"),
    }


READINESS = web.AppKey("readiness", Readiness)
