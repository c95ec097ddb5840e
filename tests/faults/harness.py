"""The fault harness's machinery: real servers per case, the worker as a process, an import.

Each case gets its own PostgreSQL, Valkey and Temporal dev server under its own
directory, so a restart or a kill in one case never touches another. The worker is
`python worker.py`, configured only through its environment, exactly as deployed; it is
killed with SIGKILL, stalled with SIGSTOP and replaced like a crashed machine would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from folksjobs.devtools.devstack import EmbeddedPostgres, EmbeddedValkey, TemporalDevServer
from folksjobs.imports.uploads import upload_csv
from folksjobs.infra import db
from folksjobs.infra.temporal import connect
from folksjobs.services import open_services
from folksjobs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
CONTACT_COLUMNS = "email, first_name, last_name, company, phone, avatar_url, custom_fields"


@dataclass
class Tuning:
    """The import's knobs for a fault run (worker environment variables)."""

    chunk_rows: int = 2000
    sub_batch_rows: int = 500
    parallel_chunks: int = 4
    chunks_per_run: int = 25

    def env(self) -> dict[str, str]:
        return {
            "IMPORT_CHUNK_ROWS": str(self.chunk_rows),
            "IMPORT_SUB_BATCH_ROWS": str(self.sub_batch_rows),
            "IMPORT_PARALLEL_CHUNKS": str(self.parallel_chunks),
            "IMPORT_CHUNKS_PER_RUN": str(self.chunks_per_run),
        }


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.deliberate = False
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "worker.py"], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.deliberate = True
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop_process(self) -> None:  # SIGSTOP: stalled, not dead
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def terminate(self, timeout: float = 30) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Env:
    """One case's servers, worker processes and clients."""

    root: Path
    tuning: Tuning
    # False sets the database to synchronous_commit=off (as some tuned servers run): a
    # crash then loses the last acknowledged commits, and the import must redo them from
    # its ledger's gaps. True keeps synchronous commits (the dev stack's default).
    durable_commits: bool = False
    task_queue: str = field(default_factory=lambda: f"faults-{uuid.uuid4().hex[:8]}")
    pg: EmbeddedPostgres | None = None
    valkey: EmbeddedValkey | None = None
    temporal: TemporalDevServer | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    client: Client | None = None
    owner: asyncpg.Pool | None = None
    # Set while the harness itself takes a server down, so `supervise` leaves it alone.
    restarting: bool = False
    external: list[str] = field(default_factory=list)

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    def settings(self) -> Settings:
        assert self.pg and self.valkey and self.temporal
        return Settings.model_validate(
            {
                "database_url": self.pg.dsn,
                "redis_url": self.valkey.url,
                "temporal_address": self.temporal.address,
                "temporal_task_queue": self.task_queue,
                "blob_url": str(self.root / "blobs"),
                "outbox_dir": self.outbox,
                "state_dir": self.root,
                "gravatar_enabled": False,
                "email_backend": "outbox",
                "anthropic_api_key": None,
            }
        )

    def worker_env(self) -> dict[str, str]:
        s = self.settings()
        assert s.database_url and s.redis_url
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return {
            **keep,
            "TEMPORAL_ADDRESS": s.temporal_address,
            "TEMPORAL_TASK_QUEUE": s.temporal_task_queue,
            "DATABASE_URL": s.database_url,
            "REDIS_URL": s.redis_url,
            "BLOB_URL": s.blob_url,
            "OUTBOX_DIR": str(s.outbox_dir),
            "GRAVATAR_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
            "WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
            **self.tuning.env(),
        }

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.pg = EmbeddedPostgres(self.root / "pg")
        self.valkey = EmbeddedValkey(self.root / "valkey")
        self.temporal = TemporalDevServer(self.root / "temporal")
        await asyncio.to_thread(self.pg.start)
        await asyncio.to_thread(self.valkey.start, persist=False)
        for attempt in range(3):
            try:
                await asyncio.to_thread(self.temporal.start)
                break
            except RuntimeError:
                # Seen here: a port picked by free_port() taken by a neighbour before the
                # dev server bound it ("address already in use"). Another port, again.
                if attempt == 2:
                    raise
                self.temporal.port = 0
        await db.migrate(self.pg.dsn)
        self.owner = await db.create_owner_pool(self.pg.dsn, max_size=2)
        # A database-level setting outranks the server's command-line default.
        setting = "on" if self.durable_commits else "off"
        await self.owner.execute(f"ALTER DATABASE folksjobs SET synchronous_commit = {setting}")
        await self.owner.expire_connections()
        self.client = await connect(self.settings())

    async def stop(self) -> None:
        for w in self.workers:
            await asyncio.to_thread(w.terminate)
        if self.owner is not None:
            await self.owner.close()
        if self.temporal:
            await asyncio.to_thread(self.temporal.stop)
        if self.valkey:
            await asyncio.to_thread(self.valkey.stop)
        if self.pg:
            await asyncio.to_thread(self.pg.stop, "immediate")

    def start_worker(self) -> WorkerProcess:
        n = len(self.workers) + 1
        w = WorkerProcess(self.worker_env(), self.root / f"worker-{n}.log")
        self.workers.append(w)
        return w

    # --- faults on the servers ----------------------------------------------------

    async def restart_valkey_losing_data(self) -> None:
        assert self.valkey and self.valkey.alive
        self.restarting = True
        try:
            self.valkey.kill()
            await asyncio.to_thread(self.valkey.start, persist=False)
        finally:
            self.restarting = False

    async def restart_postgres(self, mode: str = "fast") -> None:
        """Stop ("fast": a clean shutdown; "immediate": a crash, recovered on start), start."""
        assert self.pg
        self.restarting = True
        try:
            await asyncio.to_thread(self.pg.stop, mode)
            await asyncio.to_thread(self.pg.start)
        finally:
            self.restarting = False
        # The owner pool's connections died with the server; a fresh pool for the checks.
        if self.owner is not None:
            self.owner.terminate()
        self.owner = await db.create_owner_pool(self.pg.dsn, max_size=2)

    async def restart_temporal(self) -> None:
        """Stop and start the dev server on the same port and state file."""
        assert self.temporal
        self.restarting = True
        try:
            await asyncio.to_thread(self.temporal.stop)
            await asyncio.to_thread(self.temporal.start)
        finally:
            self.restarting = False

    async def supervise(self) -> None:
        """Other processes on this machine may kill ours; note it and put them back.

        (Seen here: a neighbour's broad `pkill` took Valkey and the worker down mid-run.)
        """
        if self.restarting:
            return
        if self.valkey and self.valkey.port and not self.valkey.alive:
            self.external.append("Valkey died from outside; restarted (its data lost)")
            await asyncio.to_thread(self.valkey.start, persist=False)
        if self.temporal and self.temporal.proc and self.temporal.proc.poll() is not None:
            self.external.append("Temporal died from outside; restarted")
            await asyncio.to_thread(self.temporal.start)
        if self.workers and not self.workers[-1].alive and not self.workers[-1].deliberate:
            self.external.append(f"worker {len(self.workers)} died from outside; replaced")
            self.start_worker()

    # --- the import -----------------------------------------------------------------

    async def start_import(self, csv: Path) -> tuple[str, str, WorkflowHandle[Any, Any]]:
        assert self.owner and self.client
        uid = await seed.create_user(self.owner, f"faults-{uuid.uuid4().hex[:6]}@example.com")
        wid = await seed.create_workspace(self.owner, uid, "faults")
        settings = self.settings()
        async with open_services(settings, pool_size=2) as services:
            with csv.open("rb") as source:
                up = await upload_csv(services.pool, services.blob, settings, source, csv.name,
                                      wid, uid)  # fmt: skip
            handle = await confirm_import(self.client, services.pool, settings, wid, up.import_id)
        return wid, up.import_id, handle

    async def contacts(self, workspace_id: str) -> list[tuple[Any, ...]]:
        assert self.owner
        rows = await self.owner.fetch(
            f"SELECT {CONTACT_COLUMNS} FROM contacts WHERE workspace_id = $1::uuid ORDER BY email",
            workspace_id,
        )
        return [tuple(r.values()) for r in rows]

    async def import_row(self, import_id: str) -> dict[str, Any]:
        assert self.owner
        r = await self.owner.fetchrow("SELECT * FROM imports WHERE id = $1::uuid", import_id)
        assert r is not None
        return dict(r)


@dataclass
class Watch:
    """What the progress query and the imports row showed while the import ran."""

    polls: int = 0
    max_processed: int = 0
    max_db_processed: int = 0
    total: int = 0
    over_total: list[str] = field(default_factory=list)
    stage: str = "starting"
    chunks_done: int = 0
    chunks_total: int = 0


async def watch(env: Env, import_id: str, handle: WorkflowHandle[Any, Any], w: Watch,
                done: asyncio.Event) -> None:  # fmt: skip
    """Poll progress until `done`; every answer must stay within the total."""
    while not done.is_set():
        await env.supervise()
        try:
            p = await asyncio.wait_for(handle.query("progress"), 3)
            counts = p["counts"]
            w.polls += 1
            w.stage, w.chunks_done, w.chunks_total = p["stage"], p["chunks_done"], p["chunks_total"]
            w.total = counts["total_rows"] or w.total
            w.max_processed = max(w.max_processed, counts["processed_rows"])
            if w.total and counts["processed_rows"] > w.total:
                w.over_total.append(f"query: {counts['processed_rows']} > {w.total}")
            if p["chunks_done"] > p["chunks_total"]:
                w.over_total.append(f"chunks {p['chunks_done']} > {p['chunks_total']}")
        except (RPCError, TimeoutError, RuntimeError):
            pass  # no worker to answer, or the server is restarting
        try:
            row = await asyncio.wait_for(env.import_row(import_id), 3)
            w.max_db_processed = max(w.max_db_processed, row["processed_rows"])
            if row["total_rows"] and row["processed_rows"] > row["total_rows"]:
                w.over_total.append(f"db: {row['processed_rows']} > {row['total_rows']}")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError,
                AssertionError):  # fmt: skip
            pass  # PostgreSQL is restarting
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 0.2)


async def result_of(handle: WorkflowHandle[Any, Any], deadline: float) -> dict[str, Any]:
    """The workflow's result, riding out a Temporal server restart."""
    while True:
        try:
            result: dict[str, Any] = await handle.result()
            return result
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)
