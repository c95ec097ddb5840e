"""A stand-in for a Resend-style email provider, with a real provider's manners.

POST /emails (one message) and POST /emails/batch (up to 100), on loopback, for the tests
and the bench (never imported by the worker):

- a rate limit: `rate` requests a second (a token bucket holding `rate` tokens, Resend's
  default being 2); over it, 429 with Retry-After in whole seconds;
- Idempotency-Key: a key seen again with the same body gets the first answer again and
  nothing is delivered twice; with another body, 409 (as Resend); keys kept 24 h;
- outages: `outage(seconds)` answers 503 to everything for that long (`outage_after`:
  one that starts once some messages were delivered, in the middle of a run;
  `down_for_first`: the first requests, whenever they come);
- a timeout after the work was done: the first `slow_accepts` accepted requests are
  delivered, then answered only after `slow_seconds` (the client gives up first);
- 422 validation_error for a recipient in `invalid`, with the provider's reason;
- latency: every answer takes `latency` seconds.

`delivered` holds every message delivered, in order; `times` every request's arrival.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from folksjobs.devtools.devstack import free_port

IDEMPOTENCY_TTL = 24 * 3600.0
BATCH_MAX = 100


@dataclass
class Delivered:
    to: str
    subject: str
    key: str
    at: float


@dataclass
class _Kept:
    digest: str
    status: int
    body: Any
    at: float


@dataclass
class MailStandIn:
    rate: float = 2.0
    latency: float = 0.02
    invalid: set[str] = field(default_factory=set)
    slow_accepts: int = 0
    slow_seconds: float = 3.0
    # (n, seconds): an outage of `seconds` starts once n messages were delivered.
    outage_after: tuple[int, float] | None = None
    # The first n requests answer 503, whenever they come.
    down_for_first: int = 0
    port: int = field(default_factory=free_port)
    delivered: list[Delivered] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._tokens = self.rate
        self._filled = time.monotonic()
        self._down_until = 0.0
        self._keys: dict[str, _Kept] = {}
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_post("/emails", self._one)
        app.router.add_post("/emails/batch", self._batch)
        self.app = app

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def outage(self, seconds: float) -> None:
        """503 to every request from now for `seconds`."""
        self._down_until = time.monotonic() + seconds

    def count_to(self, address: str) -> int:
        return sum(1 for d in self.delivered if d.to == address)

    async def __aenter__(self) -> Self:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    # --- the API ---------------------------------------------------------------------

    async def _one(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=False)

    async def _batch(self, request: web.Request) -> web.Response:
        return await self._handle(request, batch=True)

    def _answer(
        self, status: int, body: Any, headers: dict[str, str] | None = None
    ) -> web.Response:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return web.json_response(body, status=status, headers=headers)

    def _take_token(self, now: float) -> float:
        """0 when the request may pass, else the seconds until a token is free."""
        self._tokens = min(self.rate, self._tokens + (now - self._filled) * self.rate)
        self._filled = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def _handle(self, request: web.Request, *, batch: bool) -> web.Response:
        now = time.monotonic()
        self.times.append(now)
        raw = await request.read()
        await asyncio.sleep(self.latency)
        if now < self._down_until or len(self.times) <= self.down_for_first:
            return self._answer(503, {"name": "service_unavailable", "message": "down"})
        wait = self._take_token(now)
        if wait > 0:
            return self._answer(
                429,
                {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"},
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:
            body = json.loads(raw)
        except ValueError:
            return self._answer(400, {"name": "validation_error", "message": "invalid JSON"})
        messages = body if batch else [body]
        if not isinstance(messages, list) or not 0 < len(messages) <= BATCH_MAX:
            return self._answer(422, {"name": "validation_error", "message": "1 to 100 emails"})
        for m in messages:
            for to in m.get("to", []):
                if to in self.invalid:
                    return self._answer(
                        422,
                        {
                            "statusCode": 422,
                            "name": "validation_error",
                            "message": f"Invalid `to` field: {to} is not a valid address",
                        },
                    )
        key = request.headers.get("Idempotency-Key", "")
        digest = hashlib.sha256(raw).hexdigest()
        kept = self._keys.get(key) if key else None
        if kept is not None and now - kept.at < IDEMPOTENCY_TTL:
            if kept.digest != digest:
                return self._answer(
                    409,
                    {"name": "invalid_idempotent_request", "message": "key reused, other body"},
                )
            return self._answer(kept.status, kept.body)
        ids = []
        for m in messages:
            ids.append({"id": f"std-{len(self.delivered) + 1}"})
            for to in m.get("to", []):
                self.delivered.append(Delivered(to, m.get("subject", ""), key, now))
        answer: Any = {"data": ids} if batch else ids[0]
        if self.outage_after and len(self.delivered) >= self.outage_after[0]:
            self.outage(self.outage_after[1])
            self.outage_after = None
        if key:
            self._keys[key] = _Kept(digest, 200, answer, now)
        if self.slow_accepts > 0:
            self.slow_accepts -= 1
            await asyncio.sleep(self.slow_seconds)
        return self._answer(200, answer)
