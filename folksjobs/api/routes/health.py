"""Liveness and readiness: no key needed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from folksjobs.api.context import api_of

log = logging.getLogger("folksjobs.api")


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    api = api_of(request)
    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "postgres": lambda: api.services.pool.fetchval("SELECT 1"),
        "redis": lambda: api.services.redis.ping(),
        "temporal": lambda: api.client.service_client.check_health(),
        "blob": lambda: api.services.blob.size("readyz/probe"),
    }
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(3):
                await check()
        except Exception as e:
            # The route needs no key: the answer names the dependency, the log the reason.
            log.warning("readyz: %s does not answer: %r", name, e)
            failed[name] = type(e).__name__
    if failed:
        detail = "; ".join(f"{k}: {v}" for k, v in failed.items())
        return web.json_response({"error": "not_ready", "detail": detail}, status=503)
    return web.json_response({"status": "ready", "checks": sorted(checks)})
