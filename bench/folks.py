"""folksjobs end to end through Temporal: cases a and b, and the export.

The worker is its own process (`python worker.py`), started fresh for every measured
phase with the case's settings as environment variables, so the sampled RSS and CPU are
the worker's alone and start from the same baseline whatever ran before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.sampler import Sampler
from bench.stack import BenchStack

ROOT = Path(__file__).resolve().parent.parent

# Case a: folksjobs defaults (Gravatar off: no network in a benchmark).
DEFAULTS: dict[str, str] = {}
# Case b: the spec's design, spec 002 "Why 500/50": 500-row chunks, 50-row sub-batches,
# one chunk at a time.
SPEC: dict[str, str] = {
    "IMPORT_CHUNK_ROWS": "500",
    "IMPORT_SUB_BATCH_ROWS": "50",
    "IMPORT_PARALLEL_CHUNKS": "1",
}
PRESETS = {"a": DEFAULTS, "b": SPEC}


@dataclass
class FolksEnv:
    stack: BenchStack
    work: Path
    overrides: dict[str, str] = field(default_factory=dict)
    task_queue: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:8]}")

    def env(self) -> dict[str, str]:
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
            GRAVATAR_ENABLED="false",
            ANTHROPIC_API_KEY="",
            LOG_LEVEL="INFO",
        )
        env.update(self.overrides)
        return env


class Worker:
    """`python worker.py` as a child process, ready once it says it is running."""

    def __init__(self, fenv: FolksEnv, log: Path) -> None:
        self.fenv = fenv
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Worker:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            cwd=ROOT, env=self.fenv.env(), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while b"worker running" not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker not ready after 60 s; see {self.log}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def import_available() -> str | None:
    """Why cases a/b cannot run on this checkout, or None when they can."""
    if not (ROOT / "workflows" / "import_csv.py").exists():
        return "the import job (workflows/import_csv.py) is not on this branch yet"
    return None


def export_available() -> str | None:
    if not (ROOT / "workflows" / "export_csv.py").exists():
        return "the export job (workflows/export_csv.py) is not on this branch yet"
    return None


def run_import(
    fenv: FolksEnv, csv: Path, workspace_id: str, user_id: str, sampler: Sampler
) -> dict[str, float | int | str]:
    """Upload (timed apart), start ProcessCsv, wait. Worker must be running."""
    raise NotImplementedError(import_available() or "wire folksjobs.uploads here")


def run_export(
    fenv: FolksEnv, workspace_id: str, user_id: str, sampler: Sampler
) -> dict[str, float | int | str]:
    raise NotImplementedError(export_available() or "wire the export starter here")
