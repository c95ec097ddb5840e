"""Ctrl-C on `python3 run.py demo` / `starter dev`: a stop that stops.

The stack stops in order (the worker drains, then the API, Temporal, Valkey, PostgreSQL),
one line per server and no traceback, whether the signal reaches every process of the
terminal's group or only run.py; nothing is left listening, and the next start finishes
the interrupted import exact. A server left running by a killed supervisor is found by
its pid file and stopped by the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.devtools.devstack import free_port
from folksjobs.devtools.seed import DEMO_TAGS, DEMO_WORKSPACE_ID
from folksjobs.imports.addresses import parse_email
from folksjobs.infra.temporal import connect
from folksjobs.settings import ROOT, Settings
from tests.cli import settings_env

ORDER = ["worker", "API", "Temporal", "Valkey", "PostgreSQL"]
# Enough rows that the import is still running when the signal comes (its workflow id is
# printed as it starts), few enough to keep the test short.
ROWS = 200_000


def stack_env(settings: Settings, state: Path) -> dict[str, str]:
    env = settings_env(
        settings,
        STATE_DIR=state,
        BLOB_URL=state / "blobs",
        OUTBOX_DIR=state / "outbox",
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_UI_URL=f"http://127.0.0.1:{free_port()}",
        TEMPORAL_TASK_QUEUE=f"stop-{os.getpid()}",
        DEV_POSTGRES_PORT=free_port(),
        DEV_VALKEY_PORT=free_port(),
        API_BIND=f"127.0.0.1:{free_port()}",
        WORKER_GRACEFUL_SHUTDOWN_SECONDS=3,
    )
    # The stack's own PostgreSQL and Valkey, as a newcomer's.
    del env["DATABASE_URL"], env["REDIS_URL"]
    return env


def ports(env: dict[str, str]) -> list[int]:
    return [
        int(env["TEMPORAL_ADDRESS"].rsplit(":", 1)[1]),
        int(env["TEMPORAL_UI_URL"].rsplit(":", 1)[1]),
        int(env["DEV_POSTGRES_PORT"]),
        int(env["DEV_VALKEY_PORT"]),
        int(env["API_BIND"].rsplit(":", 1)[1]),
    ]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def read_until(proc: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> str:
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 300)).decode()
        if not line:
            raise AssertionError(f"ended before {pattern!r}:\n" + "".join(seen))
        seen.append(line)
        if m := re.search(pattern, line):
            return m.group(0)


def assert_stopped_in_order(output: str, env: dict[str, str]) -> None:
    assert "Traceback" not in output and "Error" not in output, output
    stops = [m.group(1) for m in re.finditer(r"^  (\S+) +stopped", output, re.M)]
    assert stops == ORDER, output
    assert not [p for p in ports(env) if listening(p)], output
    state = Path(env["STATE_DIR"])
    assert not list(state.rglob("*.pid")), list(state.rglob("*.pid"))


async def start(*argv: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    # A session of its own, as a terminal's job: the test signals its whole group.
    return await asyncio.create_subprocess_exec(
        *argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


async def finish(proc: asyncio.subprocess.Process, seen: list[str]) -> str:
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(120):
            async for line in proc.stdout:
                seen.append(line.decode())
            await proc.wait()
    except TimeoutError:
        proc.kill()
        raise AssertionError("did not stop:\n" + "".join(seen)) from None
    return "".join(seen)


async def processing(client: Client, workflow_id: str) -> None:
    """Until the import has committed rows: the signal comes in the middle of the work."""
    handle = client.get_workflow_handle(workflow_id)
    async with asyncio.timeout(300):
        while True:
            with contextlib.suppress(Exception):
                if (await handle.query("progress"))["counts"]["processed_rows"] > 0:
                    return
            await asyncio.sleep(0.2)


def expected(csv_path: Path) -> dict[str, int]:
    with csv_path.open(newline="", encoding="utf-8") as f:
        rows = [r[0] for r in list(csv.reader(f))[1:]]
    emails = [parse_email(r)[0] for r in rows]
    valid = [e for e in emails if e]
    distinct = len(set(valid))
    return {"total_rows": len(rows), "inserted": distinct, "updated": 0,
            "failed": len(rows) - len(valid), "duplicates": len(valid) - distinct}  # fmt: skip


@pytest.fixture
def state() -> Iterator[Path]:
    # Not under pytest's basetemp: as root, PostgreSQL runs as its own user, and every
    # pytest session on the machine chmods /tmp/pytest-of-root back to 0700.
    path = Path(tempfile.mkdtemp(prefix="folksjobs-stop-"))
    yield path / "var"
    # After a failure, what the pid files name is still running.
    for pidfile in (path / "var").rglob("*.pid"):
        with contextlib.suppress(ValueError, IndexError, OSError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("whom", ["group", "run.py"])
async def test_ctrl_c_in_the_demo_stops_in_order_and_the_restart_finishes_exact(
    settings: Settings, state: Path, whom: str
) -> None:
    env = stack_env(settings, state)
    demo = await start(sys.executable, "run.py", "demo", "--rows", str(ROWS), env=env)
    seen: list[str] = []
    workflow_id = await read_until(demo, r"import-[0-9a-f-]{36}", seen)
    client = await connect(settings.model_copy(update={
        "temporal_address": env["TEMPORAL_ADDRESS"],
        "temporal_task_queue": env["TEMPORAL_TASK_QUEUE"]}))  # fmt: skip
    await processing(client, workflow_id)
    # As a terminal's Ctrl-C: every process of the group, or run.py alone (kill -INT).
    if whom == "group":
        os.killpg(demo.pid, signal.SIGINT)
    else:
        demo.send_signal(signal.SIGINT)
    output = await finish(demo, seen)
    assert demo.returncode == 130, output
    assert "interrupted: a started import goes on" in output
    assert_stopped_in_order(output, env)

    dev = await start(sys.executable, "-m", "starter", "dev", env=env)
    seen = []
    await read_until(dev, "^Ctrl-C stops everything", seen)
    try:
        client = await connect(settings.model_copy(update={
            "temporal_address": env["TEMPORAL_ADDRESS"],
            "temporal_task_queue": env["TEMPORAL_TASK_QUEUE"]}))  # fmt: skip
        result = await asyncio.wait_for(client.get_workflow_handle(workflow_id).result(), 300)
        dsn = f"postgresql://postgres@127.0.0.1:{env['DEV_POSTGRES_PORT']}/folksjobs"
        conn = await asyncpg.connect(dsn)
        try:
            stored = await conn.fetchval(
                "SELECT count(*) FROM contacts WHERE workspace_id = $1", DEMO_WORKSPACE_ID
            )
        finally:
            await conn.close()
    finally:
        dev.send_signal(signal.SIGINT)
        output = await finish(dev, seen)
    want = expected(state / "demo" / f"contacts-{ROWS}.csv")
    assert {k: result[k] for k in want} == want
    seeded = {e for emails in DEMO_TAGS.values() for e in emails}
    assert stored == want["inserted"] + len(seeded)
    assert dev.returncode == 0, output
    assert_stopped_in_order(output, env)


async def test_servers_left_by_a_killed_stack_are_stopped_by_the_next(
    settings: Settings, state: Path
) -> None:
    env = stack_env(settings, state)
    first = await start(sys.executable, "-m", "starter", "dev", "--no-worker", env=env)
    seen: list[str] = []
    await read_until(first, "^Ctrl-C stops everything", seen)
    first.kill()  # the supervisor only: its servers run on, in sessions of their own
    await first.wait()
    assert all(listening(p) for p in ports(env)[:4])

    second = await start(sys.executable, "-m", "starter", "dev", "--no-worker", env=env)
    seen = []
    try:
        await read_until(second, "^Ctrl-C stops everything", seen)
    finally:
        second.send_signal(signal.SIGINT)
        output = await finish(second, seen)
    for name in ("PostgreSQL", "Valkey", "Temporal"):
        assert re.search(rf"^stopped {name} left running by an earlier run \(pid \d+\)$",
                         output, re.M), output  # fmt: skip
    assert second.returncode == 0, output
    assert "Traceback" not in output, output
    assert not [p for p in ports(env) if listening(p)], output


async def test_a_second_stack_on_the_same_state_names_the_first(
    settings: Settings, state: Path
) -> None:
    env = stack_env(settings, state)
    first = await start(sys.executable, "-m", "starter", "dev", "--no-worker", env=env)
    seen: list[str] = []
    try:
        export = await read_until(first, "export DATABASE_URL=.*", seen)
        # The README's second shell: the export line in place, `starter dev` again.
        again = {**env, **dict(kv.split("=", 1) for kv in export.split()[1:])}
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "starter", "dev"], cwd=ROOT, env=again,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        first.send_signal(signal.SIGINT)
        await finish(first, seen)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"a dev stack is already running on {state} (pid {first.pid}" in proc.stderr
    assert "this shell has its DATABASE_URL: run the other commands here" in proc.stderr
