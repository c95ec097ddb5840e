"""SIGTERM to a worker in the middle of a large import (issue 27, item 7): the worker
process exits within WORKER_GRACEFUL_SHUTDOWN_SECONDS plus 5 s, and another worker
finishes the import exactly. 100k rows stand in for the issue's 2M (bench/ runs the
large one): what matters is that chunking and chunks are in flight when the signal comes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import Client

from folksjobs.confirm import confirm_import
from folksjobs.models import ImportProgress
from folksjobs.services import open_services
from folksjobs.settings import ROOT, Settings
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload

ROWS = 100_000
# Long, so a worker that waits out its grace shows: the chunker, which can never finish a
# large file within it, hands over at once (activities/imports/common.py).
GRACE = 30.0


def _env(settings: Settings) -> dict[str, str]:
    names = ("temporal_address", "database_url", "redis_url", "temporal_task_queue",
             "blob_url", "outbox_dir", "state_dir", "gravatar_enabled", "import_chunk_rows",
             "import_sub_batch_rows", "import_parallel_chunks",
             "worker_graceful_shutdown_seconds")  # fmt: skip
    return {
        **os.environ,
        "LOG_FORMAT": "json",
        **{n.upper(): str(getattr(settings, n)) for n in names},
    }


async def _started_worker(
    settings: Settings,
) -> tuple[asyncio.subprocess.Process, asyncio.Future[bytes]]:
    proc = await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "folksjobs", "worker", cwd=ROOT, env=_env(settings),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    while True:
        raw = await asyncio.wait_for(proc.stderr.readline(), 60)
        assert raw, "the worker exited before it ran"
        if json.loads(raw)["message"].startswith("worker running"):
            break
    # Nobody reads its log from here: drain it so a full pipe never blocks the worker.
    return proc, asyncio.ensure_future(proc.stderr.read())


async def test_sigterm_mid_import_exits_in_time_and_another_worker_finishes_exact(
    stack: Stack, migrated: str, client: Client, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    settings = make_settings(
        stack,
        temporal_task_queue=f"test-{uuid.uuid4().hex[:12]}",
        import_chunk_rows=2_000,
        import_sub_batch_rows=500,
        import_parallel_chunks=2,
        worker_graceful_shutdown_seconds=GRACE,
    )
    data = csv_bytes(
        [["email", "first_name"]] + [[f"p{i}@example.com", f"P{i}"] for i in range(ROWS)]
    )
    proc, log = await _started_worker(settings)
    try:
        async with open_services(settings, pool_size=2) as s:
            up = await upload(s, settings, tenant.workspace_id, tenant.user_id, data)
            handle = await confirm_import(
                client, s.pool, settings, tenant.workspace_id, up.import_id
            )
        for _ in range(600):  # chunking and process-batch both under way
            p = await handle.query("progress", result_type=ImportProgress)
            if p.chunks_done >= 2:
                break
            await asyncio.sleep(0.1)
        assert 2 <= p.chunks_done < p.chunks_total, p
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), GRACE + 60)
        took = time.monotonic() - sent
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await log
    # The bound, a correctness property (a stop that hangs), not a speed target;
    # and the chunking in flight (held by the Redis bound) did not hold the grace open.
    assert took <= GRACE + 5, f"the worker took {took:.1f} s to stop (grace {GRACE} s)"
    assert took < GRACE, f"the worker waited out its grace ({took:.1f} s)"
    assert code == 0
    async with running_worker(client, settings, settings.temporal_task_queue):
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    assert (result["total_rows"], result["inserted"], result["failed"]) == (ROWS, ROWS, 0)
    stored = await owner_pool.fetchval(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid", tenant.workspace_id
    )
    assert stored == ROWS
