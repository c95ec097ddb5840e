"""Rollouts: the worker's probes (ready only once the server has seen it poll, live while
its loop answers: folksjobs/infra/health.py), and new workers waiting for their release's
migrations."""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
import uuid

import aiohttp
import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.infra import db
from folksjobs.infra.health import WorkerHealth, polled_queues, serving_health
from folksjobs.models import avatars_task_queue, chunking_task_queue
from folksjobs.settings import Settings
from tests.cli import starter
from tests.conftest import Stack, running_worker


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.get(url) as r:
        return r.status, await r.json()


async def test_worker_is_ready_once_it_polls_and_not_before(
    client: Client, settings: Settings, task_queue: str
) -> None:
    queues = polled_queues(
        task_queue, chunking_task_queue(task_queue), avatars_task_queue(task_queue)
    )
    health = WorkerHealth(client, queues, client.identity)
    async with (
        serving_health(health, "127.0.0.1:0") as runner,
        aiohttp.ClientSession() as http,
    ):
        base = "http://{}:{}".format(*runner.addresses[0][:2])
        assert (await _get(http, f"{base}/livez"))[0] == 200
        # Nothing polls these queues yet: the server lists no poller, so not ready.
        await asyncio.sleep(1.5)
        status, body = await _get(http, f"{base}/readyz")
        assert status == 503
        assert task_queue in body["detail"] and "chunking" in body["detail"]
        assert avatars_task_queue(task_queue) in body["detail"]
        assert not await health.check()

        async with running_worker(client, settings, task_queue):
            deadline = time.monotonic() + 30
            while (status := (await _get(http, f"{base}/readyz"))[0]) != 200:
                assert time.monotonic() < deadline, "the worker never became ready"
                await asyncio.sleep(0.2)
            assert (await _get(http, f"{base}/readyz"))[1]["identity"] == client.identity
            assert health.waiting_for == []
            health.stop()
            # Draining: no longer ready, still live.
            assert (await _get(http, f"{base}/readyz"))[1]["detail"] == "stopping"
            assert (await _get(http, f"{base}/livez"))[0] == 200


async def test_another_workers_polls_do_not_make_this_one_ready(
    client: Client, settings: Settings, task_queue: str
) -> None:
    health = WorkerHealth(client, polled_queues(task_queue, None), "someone-else@elsewhere")
    async with running_worker(client, settings, task_queue):
        me = WorkerHealth(client, polled_queues(task_queue, None), client.identity)
        deadline = time.monotonic() + 30
        while not await me.check():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert not await health.check()
        assert len(health.waiting_for) == 2


async def test_new_workers_wait_for_their_releases_migrations(
    stack: Stack, settings: Settings
) -> None:
    """`folksjobs migrate --wait` (the worker's init container) applies nothing and
    returns once another process has applied every migration of this build."""
    name = f"release_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = stack.database_url.rsplit("/", 1)[0] + f"/{name}"
    fresh = settings.model_copy(update={"database_url": dsn})
    assert await db.pending_migrations(dsn) == [v for v, _ in db._migrations()]

    refused = await asyncio.to_thread(starter, fresh, "migrate", "--wait", "1")
    assert refused.returncode == 3, refused.stderr
    assert "not applied after 1s: 0001_schema" in refused.stderr
    assert "setup Job" in refused.stderr
    assert await db.pending_migrations(dsn) != []  # it applied nothing

    waiting = asyncio.create_task(asyncio.to_thread(starter, fresh, "migrate", "--wait", "60"))
    await asyncio.sleep(1)
    assert not waiting.done()
    assert await db.migrate(dsn)  # the release's setup Job
    done = await waiting
    assert done.returncode == 0, done.stderr
    assert await db.pending_migrations(dsn) == []


async def test_liveness_fails_while_the_event_loop_is_stuck(
    client: Client, task_queue: str
) -> None:
    """/livez runs on the worker's own loop: a loop held by CPU work or a blocking call
    misses the probe's timeout, and answers again once it is free."""
    health = WorkerHealth(client, polled_queues(task_queue, None), client.identity)
    async with serving_health(health, "127.0.0.1:0") as runner:
        url = "http://{}:{}/livez".format(*runner.addresses[0][:2])
        asking = threading.Event()

        def probe() -> int:
            asking.set()
            with urllib.request.urlopen(url, timeout=1) as r:
                return int(r.status)

        answer = asyncio.get_running_loop().run_in_executor(None, probe)
        asking.wait(10)
        time.sleep(2.5)  # noqa: ASYNC251 - the stuck loop this test is about
        with pytest.raises(TimeoutError):
            await answer
        assert await asyncio.to_thread(probe) == 200


async def test_a_versioned_worker_is_ready_once_it_polls(
    client: Client, settings: Settings, task_queue: str
) -> None:
    """With Worker Deployment versioning on, the server still lists the new version's
    pollers before the version is current, so a ramp can start from Ready pods."""
    versioned = settings.model_copy(
        update={"worker_deployment_name": f"health-{uuid.uuid4().hex[:6]}", "worker_build_id": "1"}
    )
    health = WorkerHealth(
        client, polled_queues(task_queue, chunking_task_queue(task_queue)), client.identity
    )
    async with running_worker(client, versioned, task_queue):
        deadline = time.monotonic() + 30
        while not await health.check():
            assert time.monotonic() < deadline, health.waiting_for
            await asyncio.sleep(0.2)
