"""Uploads never wait on each other (issue 27, item 5): many `upload_csv` calls in one
process, and slow HTTP clients beside a quick one."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
from pathlib import Path
from typing import BinaryIO, cast

import asyncpg

from folksjobs.imports.uploads import upload_csv
from folksjobs.services import open_services
from folksjobs.settings import Settings
from tests.apiserver import ApiServer
from tests.conftest import Stack, Tenant, make_settings
from tests.importing import csv_bytes
from tests.test_api import CSV, call, chunked, form, http, raw_request, upload_head

UPLOADS = 40


class _Pipe(io.RawIOBase):
    """A file read the way a pipe is: at most 4 KiB a read, so each upload reads again
    after its first piece (the case that needs the executor while parsing)."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        return self.fh.readinto(memoryview(buf)[:4096])

    def close(self) -> None:
        self.fh.close()
        super().close()


async def test_forty_file_uploads_at_once_all_complete(
    stack: Stack, migrated: str, tenant: Tenant, owner_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """Each upload's parse waits on its file's reads: were the parse in the loop's shared
    executor, 40 parses would fill it and wait for reads no free thread is left to run.
    The executor is made small (4 threads) so the test holds on any machine."""
    files = []
    for n in range(UPLOADS):
        path = tmp_path / f"f{n}.csv"
        path.write_bytes(csv_bytes([["email"]] + [[f"u{n}-{i}@example.com"] for i in range(1000)]))
        files.append(path)
    settings = make_settings(stack, preview_bytes=4096)  # the parse reads past the preview
    loop = asyncio.get_running_loop()
    small = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    loop.set_default_executor(small)
    try:
        rows = await _upload_all(settings, tenant, files)
    finally:
        # The session's loop gets a default-sized executor back for the other tests.
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor())
        small.shutdown(wait=False, cancel_futures=True)
    assert rows == [1000] * UPLOADS
    assert (
        await owner_pool.fetchval(
            "SELECT count(*) FROM imports WHERE workspace_id = $1::uuid", tenant.workspace_id
        )
        == UPLOADS
    )


async def _upload_all(settings: Settings, tenant: Tenant, files: list[Path]) -> list[int]:
    async with open_services(settings, pool_size=4) as s:

        async def one(path: Path) -> int:
            with cast(BinaryIO, _Pipe(path)) as fh:
                up = await upload_csv(
                    s.pool, s.blob, settings, fh, path.name, tenant.workspace_id, tenant.user_id
                )
            return up.total_rows

        # A hang guard, not a speed target: before the fix this never returned.
        return await asyncio.wait_for(asyncio.gather(*map(one, files)), timeout=60)


async def test_slow_clients_do_not_hold_back_another_upload(api_server: ApiServer) -> None:
    """Eight clients trickle their bodies (a small piece every 0.2 s, within the test
    server's 2 s body deadline); a ninth upload is answered 201 while they still send."""
    api = api_server
    body = chunked(b"email\n" + b"".join(b"s%d@example.com\n" % i for i in range(8)), size=24)
    slow_tenants = [await api.tenant(f"slow {n}") for n in range(8)]
    slow = [
        asyncio.create_task(
            raw_request(api, upload_head(t, "Transfer-Encoding: chunked\r\n"), body, pause=0.2)
        )
        for t in slow_tenants
    ]
    await asyncio.sleep(0.3)  # every slow body has started
    quick = await api.tenant("quick")
    async with http() as s:
        status, _ = await call(s, api, "POST", "/v1/imports", quick, data=form(CSV))
    assert status == 201
    assert not any(t.done() for t in slow), "the quick upload waited for the slow ones"
    assert [status for status, _ in await asyncio.gather(*slow)] == [201] * 8
