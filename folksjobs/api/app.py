"""The aiohttp application: error shape, key check, limits, and the process that serves it.

Every refusal is `{"error": <short name>, "detail": <for a person>}` with its status.
The key comes from `Authorization: Bearer <key>` only, never from the URL, so it never
reaches an access log; the access log format leaves headers out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web
from temporalio.client import Client

from folksjobs.api import keys, openapi, routes
from folksjobs.api.context import API, KEY, Api, ApiError, api_of, json_error
from folksjobs.api.observe import observe
from folksjobs.api.readiness import READINESS, Readiness, api_checks
from folksjobs.infra.db import migrate
from folksjobs.infra.metrics import build_runtime
from folksjobs.infra.temporal import connect
from folksjobs.services import Services, open_services
from folksjobs.settings import Settings

log = logging.getLogger("folksjobs.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Routes any valid key may call; a service key may call nothing else.
SERVICE_ROUTES = {("POST", "/v1/events")}
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tfs'


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    # A refusal leaves the rest of the body unread; aiohttp then reads and drops it for at
    # most its lingering time (10 s) after the answer is sent, so the client, still
    # sending, gets the answer rather than a connection reset.
    except ApiError as e:
        return json_error(e.status, e.error, e.detail)
    except web.HTTPRequestEntityTooLarge as e:
        return json_error(413, "body_too_large", e.text or "the request body is too large")
    except web.HTTPException as e:
        if e.status_code < 400:
            raise
        return json_error(e.status_code, e.reason.lower().replace(" ", "_"), e.reason)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal", "the server failed; the error is in its log")


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret:
        raise ApiError(401, "unauthorized", "send the API key as `Authorization: Bearer <key>`")
    key = await keys.authenticate(api_of(request).services.pool, secret.strip())
    if key is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked")
    route = request.match_info.route.resource
    pattern = route.canonical if route is not None else request.path
    if key.kind == "service" and (request.method, pattern) not in SERVICE_ROUTES:
        raise ApiError(403, "forbidden", "a service key may only send events (POST /v1/events)")
    request[KEY] = key
    return await handler(request)


async def console(request: web.Request) -> web.StreamResponse:
    page = resources.files("folksjobs.api").joinpath("static/console.html").read_bytes()
    return web.Response(body=page, content_type="text/html", charset="utf-8")


async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.json_response(openapi.document())


def build_app(settings: Settings, services: Services, client: Client) -> web.Application:
    app = web.Application(
        middlewares=[observe(settings, client), errors, authenticate],
        client_max_size=settings.api_max_json_bytes,
    )
    app[API] = api = Api(settings, services, client)
    app[READINESS] = Readiness(api_checks(api))
    app.router.add_get("/", console)
    app.router.add_get("/openapi.json", openapi_json)
    routes.add_routes(app.router)
    return app


def handler_args(settings: Settings) -> dict[str, Any]:
    """The HTTP parser's own limits: the request line and each header."""
    return {
        "max_line_size": settings.api_max_header_bytes,
        "max_field_size": settings.api_max_header_bytes,
    }


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, client: Client | None = None, *, host: str, port: int
) -> AsyncIterator[web.AppRunner]:
    """The API on host:port until the block ends (port 0: any free port)."""
    async with open_services(settings) as services:
        # With METRICS_BIND, its Runtime serves /metrics (folksjobs/api/observe.py).
        client = client or await connect(settings, runtime=build_runtime(settings))
        runner = web.AppRunner(
            build_app(settings, services, client),
            access_log_format=ACCESS_LOG_FORMAT,
            handler_cancellation=True,
            **handler_args(settings),
        )
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        try:
            yield runner
        finally:
            await runner.cleanup()


def bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        return int(addr[1])
    raise RuntimeError("the API is not listening")


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def run_api(settings: Settings) -> None:
    """`python -m starter api`: migrate, serve on API_BIND until SIGTERM/SIGINT."""
    assert settings.database_url
    await migrate(settings.database_url)
    host, port = split_bind(settings.api_bind)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serving(settings, host=host, port=port) as runner:
        print(f"folksjobs API on http://{host}:{bound_port(runner)}/ (console at /)", flush=True)
        await stop.wait()
