"""Other languages: the TypeScript SDK (@temporalio/client, run by node) starts SendWelcome
and queries an import's progress against the dev server, beside the `temporal` CLI test
in test_contract.py. Skips only when node or npm is absent."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, import_bytes

TS = Path(__file__).parent / "ts"
NODE, NPM = shutil.which("node"), shutil.which("npm")

pytestmark = pytest.mark.skipif(
    not (NODE and NPM), reason="node and npm are needed to run the TypeScript SDK probe"
)


def _install() -> None:
    """`npm ci` from the committed lock, once per checkout (node_modules is ignored)."""
    if (TS / "node_modules" / "@temporalio" / "client").is_dir():
        return
    assert NPM
    subprocess.run([NPM, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=TS,
                   check=True, capture_output=True, timeout=300)  # fmt: skip


async def test_typescript_sdk_starts_welcome_and_queries_progress(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    await asyncio.to_thread(_install)
    settings = make_settings(stack)
    rows = [["email"]] + [[f"ts{i}@example.com"] for i in range(40)]
    async with running_worker(client, settings, task_queue) as services:
        up, _ = await import_bytes(
            client, services, settings.model_copy(update={"temporal_task_queue": task_queue}),
            tenant.workspace_id, tenant.user_id, csv_bytes(rows),
        )  # fmt: skip
        assert NODE
        proc = await asyncio.create_subprocess_exec(
            NODE, str(TS / "probe.mjs"), stack.temporal.address, task_queue, tenant.user_id,
            f"import-{up.import_id}", cwd=TS,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["welcome"]["message_id"] and answer["welcome"]["backend"] == "outbox"
    progress = answer["progress"]
    assert (progress["stage"], progress["counts"]["processed_rows"]) == ("completed", 40)
