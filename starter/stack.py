"""The development stack: Temporal (UI on :8233), PostgreSQL, Valkey, migrations, worker,
and the HTTP API with its console on API_BIND (:8080).

Servers keep their state under STATE_DIR (default ./var), so a second start finds the
same imports, contacts and workflow histories. DATABASE_URL / REDIS_URL, when set, are
used as they are and nothing is started for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlparse

from temporalio.client import Client

from folksjobs.api.app import serving, split_bind
from folksjobs.devtools.devstack import (
    EmbeddedPostgres,
    EmbeddedValkey,
    TemporalDevServer,
    ensure_port_free,
)
from folksjobs.digest.schedules import (
    ensure_digest_schedule,
    ensure_discard_uploads_schedule,
    ensure_expire_files_schedule,
)
from folksjobs.infra import db
from folksjobs.infra.logsafe import redact
from folksjobs.infra.temporal import connect
from folksjobs.settings import Settings

log = logging.getLogger("folksjobs.stack")

# Called with (settings, client) once the stack is up; jobs add their setup (schedules).
on_stack_ready: list[Callable[[Settings, Client], Awaitable[None]]] = [
    ensure_digest_schedule,  # the weekly-digest Schedule, when job_digest_enabled
    ensure_discard_uploads_schedule,  # the hourly sweep of unconfirmed uploads
    ensure_expire_files_schedule,  # the hourly sweep of files past their retention time
]


def _port(address: str, default: int) -> int:
    return urlparse(f"//{address}").port or default


@asynccontextmanager
async def dev_stack(
    settings: Settings, *, ui: bool = True, run_worker: bool = True
) -> AsyncIterator[tuple[Settings, Client]]:
    state = settings.state_dir
    started: list[TemporalDevServer | EmbeddedPostgres | EmbeddedValkey] = []
    updates: dict[str, object] = {}
    try:
        temporal_port = _port(settings.temporal_address, 7233)
        ui_port = _port(settings.temporal_ui_url.removeprefix("http://"), 8233) if ui else None
        # Every port is checked before anything starts, so a busy one leaves nothing behind.
        wanted = [(temporal_port, "Temporal gRPC", "TEMPORAL_ADDRESS")]
        if ui_port:
            wanted.append((ui_port, "Temporal UI", "TEMPORAL_UI_URL"))
        if not settings.database_url:
            wanted.append((settings.dev_postgres_port, "PostgreSQL", "DEV_POSTGRES_PORT"))
        if not settings.redis_url:
            wanted.append((settings.dev_valkey_port, "Valkey", "DEV_VALKEY_PORT"))
        for port, what, setting in wanted:
            ensure_port_free(port, what, setting)
        if not settings.database_url:
            pg = EmbeddedPostgres(state / "postgres", port=settings.dev_postgres_port)
            await asyncio.to_thread(pg.start)
            started.append(pg)
            updates["database_url"] = pg.dsn
        if not settings.redis_url:
            vk = EmbeddedValkey(state / "valkey", port=settings.dev_valkey_port)
            await asyncio.to_thread(vk.start)
            started.append(vk)
            updates["redis_url"] = vk.url
        temporal = TemporalDevServer(
            state / "temporal",
            port=temporal_port,
            ui_port=ui_port,
            extra_args=ui_codec_args(settings),
        )
        await asyncio.to_thread(temporal.start)
        started.append(temporal)
        settings = settings.model_copy(update=updates)
        assert settings.database_url is not None
        await db.migrate(settings.database_url)
        client = await connect(settings)
        for hook in on_stack_ready:
            await hook(settings, client)
        worker_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if run_worker:
            from worker import run_worker as _run

            worker_task = asyncio.create_task(_run(settings, stop))
        host, port = split_bind(settings.api_bind)
        try:
            async with contextlib.AsyncExitStack() as api:
                try:
                    await api.enter_async_context(serving(settings, client, host=host, port=port))
                except OSError as e:
                    # The jobs do not need the console: a taken port costs only the console.
                    log.warning("the API and console did not start on %s: %s", settings.api_bind, e)
                yield settings, client
        finally:
            stop.set()
            if worker_task is not None:
                with contextlib.suppress(Exception):
                    await worker_task
    finally:
        for server in reversed(started):
            await asyncio.to_thread(server.stop)


def ui_codec_args(settings: Settings) -> list[str]:
    """With payload encryption on, the UI asks the codec server (`starter codec-server`)
    to decode payloads; without it, the UI would show ciphertext."""
    if settings.payload_encryption_keys is None:
        return []
    host, _, port = settings.codec_server_bind.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return ["--ui-codec-endpoint", f"http://{host}:{port}"]


def describe(settings: Settings) -> list[tuple[str, str]]:
    encryption = (
        f"on (decode in the UI: `python -m starter codec-server` at {settings.codec_server_bind})"
        if settings.payload_encryption_keys is not None
        else "off (PAYLOAD_ENCRYPTION_KEYS unset)"
    )
    return [
        ("Temporal UI", settings.temporal_ui_url),
        ("Console", console_url(settings)),
        ("Temporal gRPC", settings.temporal_address),
        # A password in a URL stays out of terminals and CI logs.
        ("PostgreSQL", redact(settings.database_url or "-")),
        ("Redis", redact(settings.redis_url or "-")),
        ("Blob store", settings.blob_url),
        ("Outbox", str(settings.outbox_dir)),
        ("Encryption", encryption),
    ]


def console_url(settings: Settings) -> str:
    host, port = split_bind(settings.api_bind)
    return f"http://{host}:{port}/"
