"""Liveness and readiness: no key needed."""

from __future__ import annotations

from aiohttp import web

from folksjobs.api.readiness import READINESS


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    # Concurrent, bounded and cached: folksjobs/api/readiness.py.
    return await request.app[READINESS].response()
