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
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlparse

from temporalio.client import Client

from folksjobs.api.app import serving, split_bind
from folksjobs.devtools import pidfiles
from folksjobs.devtools.devstack import (
    EmbeddedPostgres,
    EmbeddedValkey,
    StackError,
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


Server = TemporalDevServer | EmbeddedPostgres | EmbeddedValkey


def _quiet(_line: str) -> None:
    pass


@asynccontextmanager
async def dev_stack(
    settings: Settings,
    *,
    ui: bool = True,
    run_worker: bool = True,
    say: Callable[[str], None] = _quiet,
) -> AsyncIterator[tuple[Settings, Client]]:
    """The stack until the block ends, then stopped in order: the worker drains its
    activities (WORKER_GRACEFUL_SHUTDOWN_SECONDS) while everything it talks to is still
    up, then the API, Temporal, Valkey and PostgreSQL; `say` gets one line per server.

    The servers run in sessions of their own, so a terminal's Ctrl-C reaches only the
    process holding this block; `STATE_DIR/dev.pid` names that process, which keeps a
    second stack off the same state and lets the next start find servers a killed one
    left running (through their pid files) and stop them.
    """
    state = settings.state_dir
    temporal_port = _port(settings.temporal_address, 7233)
    ui_port = _port(settings.temporal_ui_url.removeprefix("http://"), 8233) if ui else None
    servers: list[tuple[str, Server]] = []
    if not settings.database_url:
        pg = EmbeddedPostgres(state / "postgres", port=settings.dev_postgres_port)
        servers.append(("PostgreSQL", pg))
    if not settings.redis_url:
        vk = EmbeddedValkey(state / "valkey", port=settings.dev_valkey_port)
        servers.append(("Valkey", vk))
    temporal = TemporalDevServer(
        state / "temporal", port=temporal_port, ui_port=ui_port, extra_args=ui_codec_args(settings)
    )
    servers.append(("Temporal", temporal))
    claim_state(settings)
    started: list[tuple[str, Server]] = []
    updates: dict[str, object] = {}
    try:
        for name, server in servers:
            await asyncio.to_thread(stop_leftover, name, server, say)
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
        for name, server in servers:
            await asyncio.to_thread(server.start)
            started.append((name, server))
            if isinstance(server, EmbeddedPostgres):
                for note in server.notes:
                    log.warning("%s", note)
                updates["database_url"] = server.dsn
            elif isinstance(server, EmbeddedValkey):
                updates["redis_url"] = server.url
        settings = settings.model_copy(update=updates)
        assert settings.database_url is not None
        await db.migrate(settings.database_url)
        client = await connect(settings)
        for hook in on_stack_ready:
            await hook(settings, client)
        host, port = split_bind(settings.api_bind)
        api_up = False
        try:
            async with contextlib.AsyncExitStack() as api:
                try:
                    await api.enter_async_context(serving(settings, client, host=host, port=port))
                    api_up = True
                except OSError as e:
                    # The jobs do not need the console: a taken port costs only the console.
                    log.warning(
                        "the API and console did not start on API_BIND %s: %s; set API_BIND "
                        "to another port for them",
                        settings.api_bind,
                        e,
                    )
                async with _worker(settings, run_worker, say):
                    yield settings, client
        finally:
            if api_up:
                say(f"  {'API':<11} stopped")
    finally:
        for name, server in reversed(started):
            try:
                await asyncio.to_thread(server.stop)
                say(f"  {name:<11} stopped")
            except Exception as e:  # the others are still stopped
                say(f"  {name:<11} did not stop: {e}")
        release_state(state)


@asynccontextmanager
async def _worker(settings: Settings, run: bool, say: Callable[[str], None]) -> AsyncIterator[None]:
    if not run:
        yield
        return
    from worker import run_worker

    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield
    finally:
        t0 = time.monotonic()
        stop.set()
        sdk = logging.getLogger("temporalio.activity")
        quiet = _DropCancelled()
        sdk.addFilter(quiet)
        # The grace period, then a margin for the cancelled activities to end. A worker
        # still not done (a workflow task that waits on a local activity) is left: its
        # work resumes from Temporal's history at the next start, and the ledger keeps
        # the import exact.
        done, _ = await asyncio.wait({task}, timeout=settings.worker_graceful_shutdown_seconds + 10)
        took = f"{time.monotonic() - t0:.1f} s"
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            say(f"  {'worker':<11} stopped after {took}, not drained: the rest at the next start")
        elif task.exception() is not None:
            say(f"  {'worker':<11} stopped after {took}: {task.exception()!r}")
        else:
            say(f"  {'worker':<11} stopped (drained in {took})")
        sdk.removeFilter(quiet)


class _DropCancelled(logging.Filter):
    """Activities still running after the grace period are cancelled by the stop itself,
    and the SDK logs each with its traceback: the stop's own line says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if isinstance(exc, asyncio.CancelledError):
                return False
            exc = exc.__cause__ or exc.__context__
        return True


def on_signals(callback: Callable[[], None]) -> None:
    """SIGINT and SIGTERM call `callback`, once: a terminal's Ctrl-C reaches both this
    process and run.py, which forwards it, so one Ctrl-C may arrive twice; the stop is
    bounded by the worker's grace period either way."""
    loop = asyncio.get_running_loop()
    fired = False

    def once() -> None:
        nonlocal fired
        if not fired:
            fired = True
            callback()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, once)


def claim_state(settings: Settings) -> None:
    """One dev stack per state directory: a second would find the first one's servers."""
    lock = settings.state_dir / "dev.pid"
    pid = pidfiles.running(lock, "starter")
    if pid is not None and pid != os.getpid():
        use = (
            # The README's second shell: the export line is in place, `starter dev` again.
            "this shell has its DATABASE_URL: run the other commands here"
            if settings.database_url
            else "use it (its banner has the line `export DATABASE_URL=... REDIS_URL=...`)"
        )
        raise StackError(
            f"a dev stack is already running on {settings.state_dir} (pid {pid}: "
            f"`{pidfiles.command_line(pid)}`): {use}, or stop it (Ctrl-C in its shell, "
            f"or `kill {pid}`) to start a new one"
        )
    pidfiles.write(lock, os.getpid())


def release_state(state: Path) -> None:
    if pidfiles.running(state / "dev.pid", "starter") == os.getpid():
        pidfiles.remove(state / "dev.pid")  # not another stack's, started meanwhile


def stop_leftover(name: str, server: Server, say: Callable[[str], None]) -> None:
    """A server a killed `starter dev` left running on this state is stopped, or named
    with the command that stops it."""
    pid = server.leftover()
    if pid is None:
        return
    if isinstance(server, EmbeddedPostgres):
        server.stop()
        stopped = server.leftover() is None
    else:
        stopped = pidfiles.terminate(pid)
    if not stopped:
        raise StackError(
            f"{name} from an earlier run is still running (pid {pid}: "
            f"`{pidfiles.command_line(pid)}`) and could not be stopped: `kill {pid}`"
        )
    say(f"stopped {name} left running by an earlier run (pid {pid})")


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
