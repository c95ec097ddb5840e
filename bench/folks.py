"""folksjobs end to end through Temporal: cases a and b, and the export.

The worker is its own process (`python worker.py`), started fresh for every measured
phase with the case's settings as environment variables, so the sampled RSS and CPU are
the worker's alone and start from the same baseline whatever ran before.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import standins
from bench.profile import attach
from bench.sampler import Sampler
from bench.stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent

# Case a: folksjobs defaults (Gravatar on, against bench/standins.py's stand-in).
DEFAULTS: dict[str, str] = {}
# Case b: the spec's design, spec 002 "Why 500/50": 500-row chunks, 50-row sub-batches,
# one chunk at a time.
SPEC: dict[str, str] = {
    "IMPORT_CHUNK_ROWS": "500",
    "IMPORT_SUB_BATCH_ROWS": "50",
    "IMPORT_PARALLEL_CHUNKS": "1",
}
PRESETS = {"a": DEFAULTS, "b": SPEC}


def add_env_option(p: argparse.ArgumentParser) -> None:
    """--env NAME=VALUE (repeatable): a worker setting for every phase of a bench."""
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                   help="a worker setting for every phase (repeatable)")  # fmt: skip


def env_settings(p: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """--env's pairs as a dict; a pair without `=` is a usage error, not a traceback."""
    try:
        return dict(kv.split("=", 1) for kv in args.env)
    except ValueError:
        p.error("--env takes NAME=VALUE")


@dataclass
class FolksEnv:
    stack: BenchStack
    work: Path
    overrides: dict[str, str] = field(default_factory=dict)
    task_queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")

    def env(self) -> dict[str, str]:
        """The worker's settings: the stack's servers, the local outbox, Gravatar on
        against the bench's stand-in (an override may turn it off to compare)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("IMPORT_", "EXPORT_", "GRAVATAR_", "ANTHROPIC_"))
        }
        env.update(
            TEMPORAL_ADDRESS=self.stack.temporal.address,
            TEMPORAL_TASK_QUEUE=self.task_queue,
            DATABASE_URL=self.stack.dsn,
            REDIS_URL=self.stack.valkey.url,
            BLOB_URL=str(self.work / "blobs"),
            STATE_DIR=str(self.work),
            OUTBOX_DIR=str(self.work / "outbox"),
            EMAIL_BACKEND="outbox",
            GRAVATAR_ENABLED="true",
            GRAVATAR_BASE_URL=f"{standins.shared().url}/avatar",
            ANTHROPIC_API_KEY="",
            LOG_LEVEL="INFO",
        )
        env.update(self.overrides)
        return env


class Worker:
    """`python worker.py` as a child process, ready once it says it is running."""

    def __init__(
        self, fenv: FolksEnv, log: Path, profile: Path | None = None, cpus: str | None = None
    ) -> None:
        self.fenv = fenv
        self.log = log
        self.profile = profile
        # `taskset -c` CPU list (e.g. "0"): the worker and its chunker processes on those
        # cores only, so N workers on N cores compare with one worker on one.
        self.cpus = cpus
        self.proc: subprocess.Popen[bytes] | None = None
        self.spy: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Worker:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "wb")
        pin = ["taskset", "-c", self.cpus] if self.cpus is not None else []
        self.proc = subprocess.Popen(
            [*pin, sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT, env=self.fenv.env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"worker running" not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after 60 s; see {self.log}")
            time.sleep(0.05)
        if self.profile:
            self.spy = attach(self.proc.pid, self.profile)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.spy is not None:
            try:
                self.spy.wait(60)
            except subprocess.TimeoutExpired:
                self.spy.kill()


def import_available() -> str | None:
    """Why cases a/b cannot run on this checkout, or None when they can."""
    if not (ROOT / "workflows" / "import_csv.py").exists():
        return "the import job (workflows/import_csv.py) is not on this branch yet"
    return None


def export_available() -> str | None:
    if not (ROOT / "workflows" / "export_csv.py").exists():
        return "the export job (workflows/export_csv.py) is not on this branch yet"
    return None


def _settings(fenv: FolksEnv) -> Any:
    from folksjobs.settings import Settings

    env = fenv.env()
    fields = {k.lower(): v for k, v in env.items() if k.lower() in Settings.model_fields}
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg, arg-type]


def run_import(
    fenv: FolksEnv, csv: Path, workspace_id: str, user_id: str, sampler: Sampler
) -> dict[str, Any]:
    """Upload (timed apart), confirm (starts ProcessCsv), wait for its result."""
    settings = _settings(fenv)
    return asyncio.run(_import(settings, csv, workspace_id, user_id))


async def _import(settings: Any, csv: Path, workspace_id: str, user_id: str) -> dict[str, Any]:
    from folksjobs.confirm import confirm_import
    from folksjobs.imports.uploads import upload_csv
    from folksjobs.infra import db
    from folksjobs.infra.blob import build_blob_store
    from folksjobs.infra.temporal import connect
    from folksjobs.models import ImportResult

    pool = await db.create_pool(settings.database_url, max_size=2)
    blob = build_blob_store(settings)
    try:
        client = await connect(settings)
        t0 = time.perf_counter()
        f = await asyncio.to_thread(open, csv, "rb")
        try:
            up = await upload_csv(pool, blob, settings, f, csv.name, workspace_id, user_id)
        finally:
            f.close()
        upload_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        handle = await confirm_import(client, pool, settings, workspace_id, up.import_id)
        raw = await handle.result()
        res = raw if isinstance(raw, ImportResult) else ImportResult.model_validate(raw)
        wall = time.perf_counter() - t1
    finally:
        await blob.close()
        await pool.close()
    if res.status != "completed":
        raise RuntimeError(f"import {res.import_id} ended {res.status}")
    return {
        "wall_s": wall,
        "upload_s": upload_s,
        "inserted": res.inserted,
        "updated": res.updated,
        "unchanged": res.unchanged,
        "failed": res.failed,
        "duplicates": res.duplicates,
        "workflow_ms": res.duration_ms,
    }


def run_export(fenv: FolksEnv, workspace_id: str, user_id: str, sampler: Sampler) -> dict[str, Any]:
    """Create an export of the whole workspace, start ProcessExport, wait for the file."""
    return asyncio.run(_export(_settings(fenv), workspace_id, user_id))


async def _export(settings: Any, workspace_id: str, user_id: str) -> dict[str, Any]:
    from folksjobs.exports import repo as exports
    from folksjobs.infra import db
    from folksjobs.infra.blob import build_blob_store
    from folksjobs.infra.temporal import connect
    from folksjobs.models import (
        WF_PROCESS_EXPORT,
        ExportResult,
        ProcessExportInput,
        export_workflow_id,
    )

    pool = await db.create_pool(settings.database_url, max_size=2)
    blob = build_blob_store(settings)
    try:
        client = await connect(settings)
        t0 = time.perf_counter()
        export_id, uid = await exports.create_export(pool, workspace_id, user_id, [])
        handle = await client.start_workflow(
            WF_PROCESS_EXPORT,
            ProcessExportInput(export_id=export_id, workspace_id=workspace_id, user_id=uid),
            id=export_workflow_id(export_id),
            task_queue=settings.temporal_task_queue,
            result_type=ExportResult,
        )
        res = await handle.result()
        wall = time.perf_counter() - t0
        size = await blob.size(res.blob_key)
    finally:
        await blob.close()
        await pool.close()
    if res.status != "completed":
        raise RuntimeError(f"export {export_id} ended {res.status}")
    return {"wall_s": wall, "exported_rows": res.row_count, "bytes": size}
