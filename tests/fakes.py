"""Local fake servers on loopback: the email provider, Gravatar and Anthropic.

They speak the real HTTP APIs, so the real clients (aiohttp, the anthropic SDK) are used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Self

from aiohttp import web

from folksjobs.devtools.devstack import free_port


class FakeServer:
    def __init__(self) -> None:
        self.app = web.Application()
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        # A hanging handler (the "slow server" fakes) must not hold the test for 60 s.
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


class FakeEmailProvider(FakeServer):
    """Resend-style POST /emails; answers 500 for the first `fail_first` calls."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.status = status
        self.calls = 0
        self.accepted: list[dict[str, Any]] = []
        self.idempotency_keys: list[str] = []
        self.auth_headers: set[str] = set()
        self.app.router.add_post("/emails", self.emails)

    async def emails(self, request: web.Request) -> web.Response:
        self.calls += 1
        self.idempotency_keys.append(request.headers.get("Idempotency-Key", ""))
        if "Authorization" in request.headers:
            self.auth_headers.add(request.headers["Authorization"])
        body = await request.json()
        if self.calls <= self.fail_first:
            return web.json_response({"message": "internal error"}, status=self.status)
        key = request.headers.get("Idempotency-Key", "")
        if key and key in {a.get("_key") for a in self.accepted}:
            return web.json_response({"id": f"dup-{key}"})
        self.accepted.append({**body, "_key": key})
        return web.json_response({"id": f"msg-{len(self.accepted)}"})


class FakeGravatar(FakeServer):
    """HEAD /avatar/<sha256>?d=404 as Gravatar answers from a data centre: after `latency`
    seconds, 200 for hashes in `known` (or, with `hit_every`, for about one hash in that
    many), 404 otherwise. Faults, settable while it runs: `hang` (never answers),
    `outage` (503), `throttle` (the next N requests get 429 with Retry-After
    `retry_after`), `hold` (a hash's answer waits for its event). GET /stats reports the
    requests seen (POST /reset forgets them), as the bench reads them from another process."""

    def __init__(
        self,
        known: set[str] | None = None,
        hang: bool = False,
        *,
        latency: float = 0.0,
        hit_every: int = 0,
        port: int | None = None,
    ) -> None:
        super().__init__()
        if port is not None:
            self.port = port
        self.known = known or set()
        self.hang = hang
        self.latency = latency
        self.hit_every = hit_every
        self.outage = False
        self.throttle = 0
        self.retry_after = "1"
        self.hold: dict[str, asyncio.Event] = {}
        self.requests: list[str] = []
        self.times: list[float] = []  # loop time of each request's arrival
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrived = asyncio.Event()
        self.app.router.add_route("HEAD", "/avatar/{hash}", self.head)
        self.app.router.add_get("/stats", self.stats)
        self.app.router.add_post("/reset", self.reset)

    def has_avatar(self, h: str) -> bool:
        return h in self.known or (self.hit_every > 0 and int(h[:8], 16) % self.hit_every == 0)

    async def head(self, request: web.Request) -> web.Response:
        h = request.match_info["hash"]
        self.requests.append(h)
        self.times.append(asyncio.get_running_loop().time())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.arrived.set()
        try:
            if self.hang:
                await asyncio.sleep(3600)
            if self.latency:
                await asyncio.sleep(self.latency)
            if h in self.hold:
                await self.hold[h].wait()
            if self.outage:
                return web.Response(status=503)
            if self.throttle > 0:
                self.throttle -= 1
                return web.Response(status=429, headers={"Retry-After": self.retry_after})
            return web.Response(status=200 if self.has_avatar(h) else 404)
        finally:
            self.in_flight -= 1

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait until `done()` holds, checked as each request arrives."""
        while not done():
            self.arrived.clear()
            await self.arrived.wait()

    async def next_request(self) -> None:
        seen = len(self.requests)
        await self.until(lambda: len(self.requests) > seen)

    def max_per_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any `window` seconds."""
        best, lo = 0, 0
        for hi, t in enumerate(self.times):
            while t - self.times[lo] >= window:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    async def reset(self, request: web.Request) -> web.Response:
        self.requests, self.times, self.max_in_flight = [], [], self.in_flight
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        span = self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0
        return web.json_response({
            "requests": len(self.requests),
            "distinct": len(set(self.requests)),
            "max_in_flight": self.max_in_flight,
            "max_per_second": self.max_per_window(1.0),
            "first_to_last_s": round(span, 3),
        })  # fmt: skip


async def _serve_gravatar(port: int, latency: float, hit_every: int) -> None:
    async with FakeGravatar(latency=latency, hit_every=hit_every, port=port):
        await asyncio.Event().wait()


class FakeAnthropic(FakeServer):
    """POST /v1/messages: a canned answer, an error status, or a hang."""

    def __init__(
        self, text: str = "Imported contacts smoothly.", status: int = 200, hang: bool = False
    ) -> None:
        super().__init__()
        self.text = text
        self.status = status
        self.hang = hang
        self.prompts: list[str] = []
        self.app.router.add_post("/v1/messages", self.messages)

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.prompts.append(str(body.get("messages")))
        if self.hang:
            await asyncio.sleep(3600)
        if self.status != 200:
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}},
                status=self.status,
            )
        return web.json_response(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": self.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10},
            }
        )


if __name__ == "__main__":
    # The bench's stand-in, in its own process: python -m tests.fakes PORT LATENCY HIT_EVERY
    import sys

    port, latency, every = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    asyncio.run(_serve_gravatar(port, latency, every))
