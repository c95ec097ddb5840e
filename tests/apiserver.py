"""One HTTP API per test session, beside one worker on its own task queue.

The API runs in the test's event loop on a free loopback port, with small limits so the
refusal tests are quick: 1 MB uploads, a 2 s body deadline, 2 uploads at once per key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiohttp import web
from temporalio.client import Client

from folksjobs.api import keys
from folksjobs.api.app import bound_port, serving
from folksjobs.devtools import seed
from folksjobs.services import Services
from folksjobs.settings import Settings
from tests.conftest import Stack, make_settings, running_worker

UPLOAD_LIMIT = 1024 * 1024


@dataclass
class ApiServer:
    url: str
    settings: Settings
    services: Services
    owner: asyncpg.Pool
    app: web.Application

    async def tenant(self, name: str = "API workspace") -> ApiTenant:
        """A new workspace with its owner and one workspace key."""
        email = f"api-{uuid.uuid4().hex[:8]}@example.com"
        uid = await seed.create_user(self.owner, email, "API Owner")
        wid = await seed.create_workspace(self.owner, uid, name)
        key, secret = await keys.create(self.services.pool, wid, "test")
        return ApiTenant(uid, wid, key.id, secret)


@dataclass
class ApiTenant:
    user_id: str
    workspace_id: str
    key_id: str
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="session")
async def api_server(
    stack: Stack, migrated: str, client: Client, owner_pool: asyncpg.Pool
) -> AsyncIterator[ApiServer]:
    settings = make_settings(
        stack,
        temporal_task_queue=f"api-{uuid.uuid4().hex[:8]}",
        upload_max_bytes=UPLOAD_LIMIT,
        preview_bytes=4096,
        api_read_timeout_seconds=2.0,
        api_uploads_per_key=2,
        api_progress_seconds=0.2,
        api_max_json_bytes=4096,
        import_chunk_rows=200,
        import_sub_batch_rows=100,
    )
    async with (
        running_worker(client, settings, settings.temporal_task_queue) as services,
        serving(settings, client, host="127.0.0.1", port=0) as runner,
    ):
        url = f"http://127.0.0.1:{bound_port(runner)}"
        assert isinstance(runner.app, web.Application)
        yield ApiServer(url, settings, services, owner_pool, runner.app)
