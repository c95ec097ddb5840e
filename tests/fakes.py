"""Local fake servers on loopback: the email provider, Gravatar and Anthropic.

They speak the real HTTP APIs, so the real clients (aiohttp, the anthropic SDK) are used.
"""

from __future__ import annotations

import asyncio
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
    """HEAD /avatar/<sha256>?d=404: 200 for hashes in `known`, 404 otherwise."""

    def __init__(self, known: set[str] | None = None, hang: bool = False) -> None:
        super().__init__()
        self.known = known or set()
        self.hang = hang
        self.requests: list[str] = []
        self.app.router.add_route("HEAD", "/avatar/{hash}", self.head)

    async def head(self, request: web.Request) -> web.Response:
        self.requests.append(request.match_info["hash"])
        if self.hang:
            await asyncio.sleep(3600)
        return web.Response(status=200 if request.match_info["hash"] in self.known else 404)


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
