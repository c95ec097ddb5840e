"""What a handler gets from its request: the process's clients and settings, and the key.

Also the refusal every route raises, so handlers and middlewares share one error shape.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web
from temporalio.client import Client

from folksjobs.api.keys import ApiKey
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
    uploads: Counter[str] = field(default_factory=Counter)

    @contextlib.contextmanager
    def upload_slot(self, key: ApiKey) -> Iterator[None]:
        # One process counts its own uploads; N replicas allow N times as many per key.
        if self.uploads[key.id] >= self.settings.api_uploads_per_key:
            raise ApiError(
                429,
                "too_many_uploads",
                f"at most {self.settings.api_uploads_per_key} uploads at once per key; "
                "wait for one to finish",
            )
        self.uploads[key.id] += 1
        try:
            yield
        finally:
            self.uploads[key.id] -= 1


API: web.AppKey[Api] = web.AppKey("api", Api)
KEY: web.RequestKey[ApiKey] = web.RequestKey("key", ApiKey)


def api_of(request: web.Request) -> Api:
    return request.app[API]


def key_of(request: web.Request) -> ApiKey:
    return request[KEY]
