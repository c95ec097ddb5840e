"""process-export on S3 (moto): the blob store interface, and the same bytes as a directory."""

from __future__ import annotations

import aiohttp
import asyncpg
import pytest
from temporalio.client import (
    Client,
)

from folksjobs.infra.blob import BlobKeyError, build_blob_store
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings
from tests.exporting import (
    contact,
    new_bucket_settings,
    outbox,
    run_export,
    seed_contacts,
    text_body,
)

# --- S3 -----------------------------------------------------------------------------


@pytest.fixture
async def s3_settings(stack: Stack, moto_s3: str) -> Settings:
    return await new_bucket_settings(stack, moto_s3)


async def test_s3_blob_store_interface(s3_settings: Settings) -> None:
    store = build_blob_store(s3_settings)
    try:
        key = "exports/ws/one.csv"
        assert await store.size(key) is None
        w = await store.open_writer(key)
        await w.write(b"hello ")
        await w.write(b"world")
        assert await w.commit() == 11
        assert await store.size(key) == 11
        assert b"".join([c async for c in store.read(key, start=6)]) == b"world"
        assert store.uri(key).endswith("/tenant-files/exports/ws/one.csv")
        # An aborted writer publishes nothing.
        w = await store.open_writer("exports/ws/two.csv")
        await w.write(b"partial")
        await w.abort()
        assert await store.size("exports/ws/two.csv") is None
        await store.delete(key)
        assert await store.size(key) is None
        # A writer that dies after its first part leaves an open multipart upload: it is
        # not an object, and discard_unfinished aborts it.
        w = await store.open_writer(key)
        await w.write(b"x" * (5 * 1024 * 1024))
        assert await store.size(key) is None
        assert await store.discard_unfinished(key) == 1
        assert await store.discard_unfinished(key) == 0
        with pytest.raises(BlobKeyError):
            await store.open_writer("../escape.csv")
    finally:
        await store.close()


async def test_s3_export_equals_directory_export_byte_for_byte(
    client: Client,
    stack: Stack,
    owner_pool: asyncpg.Pool,
    tenant: Tenant,
    task_queue: str,
    s3_settings: Settings,
) -> None:
    # ~6 MB: more than one 5 MB part, so the multipart path is the one under test.
    filler = 'lorem ipsum, "dolor" sit amet\n' * 400
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact(
                f"p{i:04d}@example.com",
                first_name=f"Ana {i}",
                company="=evil" if i % 7 else "Ok",
                custom_fields={"n": i, "notes": filler} if i % 2 else {"odd": False},
                tags=["even"] if i % 2 == 0 else [],
            )
            for i in range(1000)
        ],
    )
    local = make_settings(stack)
    _, _, local_data = await run_export(client, local, task_queue, tenant.workspace_id)
    s3_result, s3_record, s3_data = await run_export(
        client, s3_settings, task_queue, tenant.workspace_id
    )
    assert len(local_data) > 5 * 1024 * 1024
    assert s3_data == local_data
    assert s3_record["row_count"] == 1000 and s3_record["file_bytes"] == len(s3_data)
    assert (
        s3_result["location"].startswith("s3://")
        and "tenant-files/exports/" in s3_result["location"]
    )
    # The email carries a presigned link that really downloads the file.
    [msg] = outbox(s3_settings.outbox_dir)
    body = text_body(msg)
    url = body.split("(", 1)[1].split(")", 1)[0]
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert await resp.read() == local_data
