"""One real Temporal dev server, PostgreSQL and Valkey per test session.

DATABASE_URL / REDIS_URL in the environment point the suite at existing servers;
otherwise embedded ones start from the wheels. Each test gets its own task queue and
its own workspaces, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.devtools import seed
from folksjobs.devtools.devstack import (
    EmbeddedPostgres,
    EmbeddedValkey,
    TemporalDevServer,
    free_port,
)
from folksjobs.infra import db
from folksjobs.infra.temporal import connect
from folksjobs.services import Services, open_services
from folksjobs.settings import Settings
from worker import running_workers


@dataclass
class Stack:
    root: Path
    database_url: str
    redis_url: str
    temporal: TemporalDevServer
    postgres: EmbeddedPostgres | None
    valkey: EmbeddedValkey | None


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("stack")
    pg = vk = None
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    pg_root: Path | None = None
    if not database_url:
        # Not under pytest's basetemp: as root, PostgreSQL runs as its own user, and every
        # pytest session that starts on this machine chmods /tmp/pytest-of-root back to
        # 0700, which locks that user out of a data directory below it.
        pg_root = Path(tempfile.mkdtemp(prefix="folksjobs-test-pg-"))
        pg = EmbeddedPostgres(pg_root / "pg")
        pg.start()
        database_url = pg.dsn
    if not redis_url:
        vk = EmbeddedValkey(root / "valkey")
        vk.start(persist=False)
        redis_url = vk.url
    temporal = TemporalDevServer(root / "temporal")
    temporal.start()
    try:
        yield Stack(root, database_url, redis_url, temporal, pg, vk)
    finally:
        temporal.stop()
        if vk:
            vk.stop()
        if pg:
            pg.stop(mode="immediate")
        if pg_root:
            shutil.rmtree(pg_root, ignore_errors=True)


def make_settings(stack: Stack, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": stack.database_url,
        "redis_url": stack.redis_url,
        "temporal_address": stack.temporal.address,
        "blob_url": str(stack.root / "blobs"),
        "outbox_dir": stack.root / "outbox" / uuid.uuid4().hex,
        "state_dir": stack.root,
        "gravatar_enabled": False,
        "anthropic_api_key": None,
        "email_backend": "outbox",
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
async def migrated(stack: Stack) -> str:
    await db.migrate(stack.database_url)
    return stack.database_url


@pytest.fixture(scope="session")
async def owner_pool(migrated: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_owner_pool(migrated, max_size=6)
    yield pool
    await pool.close()


@pytest.fixture
def settings(stack: Stack, migrated: str) -> Settings:
    return make_settings(stack)


@pytest.fixture(scope="session")
async def client(stack: Stack) -> Client:
    return await connect(make_settings(stack))


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, task_queue: str, **build_kw: Any
) -> AsyncIterator[Services]:
    """Services built from `settings` and a worker on `task_queue`, for one test."""
    async with (
        open_services(settings, pool_size=10) as services,
        running_workers(client, services, task_queue=task_queue, **build_kw),
    ):
        yield services


@dataclass
class Tenant:
    user_id: str
    workspace_id: str
    email: str


@pytest.fixture
async def tenant(owner_pool: asyncpg.Pool) -> Tenant:
    email = f"owner-{uuid.uuid4().hex[:8]}@example.com"
    uid = await seed.create_user(owner_pool, email, "Test Owner")
    wid = await seed.create_workspace(owner_pool, uid, "Test workspace")
    return Tenant(uid, wid, email)


# The HTTP API's session fixture, shared by the API and browser tests.
from tests.apiserver import api_server  # noqa: E402, F401


@pytest.fixture(scope="module")
def moto_s3() -> Any:
    """An S3 stand-in (moto) on loopback, for the S3 blob store's tests."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
