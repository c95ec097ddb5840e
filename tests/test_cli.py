"""The CLI a newcomer meets: fast to load, and one actionable line for expected failures.

The `--help` times themselves are measured by bench/cli_times.py, not asserted here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic import SecretStr
from temporalio.client import Client

from folksjobs.devtools import seed
from folksjobs.devtools.devstack import StackError, TemporalDevServer, free_port
from folksjobs.infra.codec import new_key_entry
from folksjobs.infra.temporal import connect
from folksjobs.settings import ROOT, Settings
from starter.cli import parser
from starter.imports import format_status
from tests.cli import settings_env, starter
from tests.conftest import Tenant, running_worker

HEAVY = ("anthropic", "aioboto3", "botocore", "folksjobs.services", "temporalio", "asyncpg")


def test_loading_the_cli_imports_no_client_library() -> None:
    code = f"import sys, starter.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]"


def test_the_services_load_anthropic_only_with_a_key() -> None:
    # `import status` and the other commands that open the services pay no ~2 s import
    # of the Anthropic SDK when there is no key to use it with.
    code = (
        "import sys; from folksjobs.notify.ai import Summarizer; "
        "from folksjobs.settings import Settings; "
        "Summarizer(Settings(anthropic_api_key=None)); "
        "print('anthropic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


def test_every_command_has_help_and_the_exit_codes_are_documented() -> None:
    p = parser()
    assert "exit codes: 0 done; 1 the job failed" in (p.epilog or "")
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        with pytest.raises(SystemExit) as info:
            p.parse_args([name, "--help"])
        assert info.value.code == 0, name


def _one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The failure is a single `error:` line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


async def test_busy_port_is_named_with_its_setting(settings: Settings, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = settings_env(settings, STATE_DIR=tmp_path, DEV_POSTGRES_PORT=port,
                           TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
                           TEMPORAL_UI_URL=f"http://127.0.0.1:{free_port()}")  # fmt: skip
        env.pop("DATABASE_URL")
        proc = await asyncio.to_thread(starter, settings, "dev", env=env)
    assert proc.returncode == 3
    line = _one_line(proc)
    assert f"port {port} (PostgreSQL) is already in use" in line
    assert "set DEV_POSTGRES_PORT to another port" in line
    assert not (tmp_path / "postgres").exists()  # nothing was started


def test_server_that_did_not_start_names_its_log(tmp_path: Path) -> None:
    server = TemporalDevServer(tmp_path, extra_args=["--no-such-flag"])
    with pytest.raises(StackError) as info:
        server.start(timeout=30)
    assert f"its log: {tmp_path / 'temporal.log'}" in str(info.value)


async def test_unknown_workspace_tag_and_import(
    settings: Settings, tenant: Tenant, tmp_path: Path, owner_pool: asyncpg.Pool
) -> None:
    nobody = str(uuid.uuid4())
    await seed.tag_contacts(owner_pool, tenant.workspace_id, {"vip": [], "a, b": []})
    csv_file = tmp_path / "c.csv"
    csv_file.write_text("email\nann@example.com\n")
    cases = [
        (("import", str(csv_file), "--workspace", nobody), f"workspace {nobody} does not exist"),
        (
            ("export", "--workspace", tenant.workspace_id, "--tag", "nope"),
            f"no tag named 'nope' in workspace {tenant.workspace_id}; its tags: 'a, b', 'vip'",
        ),
        (("import", "status", nobody), f"no import {nobody} has run"),
    ]
    for argv, message in cases:
        proc = await asyncio.to_thread(starter, settings, *argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert message in _one_line(proc)


async def test_wrong_or_missing_encryption_keys_and_a_failed_workflow(
    settings: Settings, tenant: Tenant, task_queue: str
) -> None:
    settings = settings.model_copy(update={"temporal_task_queue": task_queue})
    keys = SecretStr(new_key_entry("k1"))
    keyed = settings.model_copy(update={"payload_encryption_keys": keys})
    welcome = ("dispatch", "user/signed.up", "--data", json.dumps({"userId": tenant.user_id}))

    env = settings_env(settings, PAYLOAD_ENCRYPTION_KEYS="not-a-key")
    proc = await asyncio.to_thread(starter, settings, *welcome, env=env)
    assert proc.returncode == 3
    assert "PAYLOAD_ENCRYPTION_KEYS: payload encryption key #1 must look like" in _one_line(proc)

    encrypted: Client = await connect(keyed)
    async with running_worker(encrypted, keyed, task_queue):
        # A welcome run with encrypted payloads, then read back without the keys.
        proc = await asyncio.to_thread(starter, settings, *welcome, "--wait",
                                       env=settings_env(keyed))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        proc = await asyncio.to_thread(starter, settings, *welcome, "--wait")
        assert proc.returncode == 3
        assert "the payloads are encrypted and PAYLOAD_ENCRYPTION_KEYS is not set" in _one_line(
            proc
        )
        # A workflow that fails under --wait: exit 1, its cause; -v adds the traceback.
        ghost = ("dispatch", "user/signed.up", "--data", json.dumps({"userId": str(uuid.uuid4())}))
        proc = await asyncio.to_thread(starter, settings, *ghost, "--wait", env=settings_env(keyed))
        assert proc.returncode == 1
        line = _one_line(proc)
        assert line.startswith("error: the workflow failed: ") and "not found" in line, line
        proc = await asyncio.to_thread(starter, settings, "-v", *ghost, "--wait",
                                       env=settings_env(keyed))  # fmt: skip
        assert proc.returncode == 1 and "Traceback" in proc.stderr


async def test_temporal_not_running_says_how_to_start_it(settings: Settings) -> None:
    env = settings_env(settings, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}")
    proc = await asyncio.to_thread(starter, settings, "import", "status", str(uuid.uuid4()),
                                   env=env)  # fmt: skip
    assert proc.returncode == 3
    line = _one_line(proc)
    assert "cannot reach Temporal at 127.0.0.1:" in line
    assert "start the dev stack with `python -m starter dev`" in line


def test_a_port_left_in_time_wait_is_free_for_a_restart() -> None:
    from folksjobs.devtools.devstack import ensure_port_free

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        conn, _ = server.accept()
        conn.close()  # the server side closes first: its end of the port enters TIME_WAIT
        client.close()
    ensure_port_free(port, "PostgreSQL", "DEV_POSTGRES_PORT")


async def test_api_on_a_busy_port_names_api_bind(settings: Settings) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        bind = f"127.0.0.1:{busy.getsockname()[1]}"
        proc = await asyncio.to_thread(starter, settings, "api",
                                       env=settings_env(settings, API_BIND=bind))  # fmt: skip
    assert proc.returncode == 3
    line = _one_line(proc)
    assert f"API_BIND {bind}: the port is already in use" in line
    assert "set API_BIND to another port" in line


def test_import_status_is_a_table() -> None:
    base = {"import_id": "i1", "workflow_id": "import-i1", "ui": "http://ui/import-i1"}
    counts = {"total_rows": 1000, "processed_rows": 400, "inserted": 390, "updated": 0,
              "unchanged": 12, "failed": 4, "duplicates": 6}  # fmt: skip
    running = format_status({**base, "status": "running", "progress": {
        "import_id": "i1", "stage": "process-batch", "chunks_total": 10, "chunks_done": 4,
        "counts": counts}})  # fmt: skip
    assert running.splitlines() == [
        "import i1  running",
        "  workflow   import-i1",
        "  stage      process-batch (chunk 4/10)",
        "  rows                400 of 1,000",
        "  inserted            390",
        "  updated               0",
        "  unchanged            12",
        "  failed                4",
        "  duplicates            6",
        "  UI         http://ui/import-i1",
    ]
    done = format_status({**base, "status": "completed", "result": {
        "import_id": "i1", "status": "completed", "total_rows": 1000, "inserted": 980,
        "updated": 0, "failed": 12, "duplicates": 8, "duration_ms": 2500,
        "ai_summary": None, "error_samples": [{"row": 7, "reason": "missing email"}]}})  # fmt: skip
    assert "  rows              1,000" in done and "  took                2.5 s" in done
    assert "  row 7: missing email" in done and "{" not in done
