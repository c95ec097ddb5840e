"""What a handler gets from its request: the process's clients and settings, and the key.

Also the refusal every route raises, so handlers and middlewares share one error shape.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from temporalio.client import Client

from folksjobs.api.keys import ApiKey
from folksjobs.infra import rediskeys
from folksjobs.services import Services
from folksjobs.settings import Settings


class ApiError(Exception):
    """A refusal with its status, a short error name and a sentence for a person."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def json_error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


@dataclass
class Api:
    """What every handler needs, built once per process."""

    settings: Settings
    services: Services
    client: Client

    @contextlib.asynccontextmanager
    async def upload_slot(self, key: ApiKey) -> AsyncIterator[None]:
        """One of the key's API_UPLOADS_PER_KEY slots, shared by every API process.

        Each upload is a member of the key's sorted set, scored by its start; members older
        than the body deadline are dropped first, so a process that died mid-upload does
        not hold its slots for ever.
        """
        redis, slots = self.services.redis, rediskeys.api_uploads(key.id)
        member, now = uuid.uuid4().hex, time.time()
        stale = now - self.settings.api_read_timeout_seconds - 60
        async with redis.pipeline(transaction=True) as tx:
            tx.zremrangebyscore(slots, "-inf", stale)
            tx.zadd(slots, {member: now})
            tx.zcard(slots)
            tx.expire(slots, int(self.settings.api_read_timeout_seconds) + 120)
            _, _, taken, _ = await tx.execute()
        try:
            if taken > self.settings.api_uploads_per_key:
                raise ApiError(
                    429,
                    "too_many_uploads",
                    f"at most {self.settings.api_uploads_per_key} uploads at once per key; "
                    "wait for one to finish",
                )
            yield
        finally:
            await redis.zrem(slots, member)


API: web.AppKey[Api] = web.AppKey("api", Api)
KEY: web.RequestKey[ApiKey] = web.RequestKey("key", ApiKey)


def api_of(request: web.Request) -> Api:
    return request.app[API]


def key_of(request: web.Request) -> ApiKey:
    return request[KEY]
