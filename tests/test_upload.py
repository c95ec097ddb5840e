"""The upload phase: limits on bytes read, binary refusal, preview, row counting, encodings."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from folksjobs.imports.uploads import UploadRefused, upload_csv, upload_stream
from folksjobs.services import open_services
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant, make_settings
from tests.importing import csv_bytes


async def _imports_of(owner: asyncpg.Pool, workspace_id: str) -> int:
    return int(
        await owner.fetchval(
            "SELECT count(*) FROM imports WHERE workspace_id = $1::uuid", workspace_id
        )
    )


def _blobs(settings: Settings, workspace_id: str) -> list[Path]:
    folder = Path(settings.blob_url) / "imports" / workspace_id
    return sorted(folder.iterdir()) if folder.exists() else []


async def _upload(
    settings: Settings, tenant: Tenant, data: bytes, overrides: list[str] | None = None
):
    async with open_services(settings, pool_size=2) as s:
        return await upload_csv(
            s.pool,
            s.blob,
            settings,
            io.BytesIO(data),
            "f.csv",
            tenant.workspace_id,
            tenant.user_id,
            overrides,
        )


async def test_over_the_limit_leaves_no_blob_and_no_import(
    stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool
) -> None:
    settings = make_settings(stack, upload_max_bytes=100_000, preview_bytes=1024)
    data = csv_bytes([["email"]] + [[f"user{i}@example.com"] for i in range(20_000)])
    assert len(data) > 100_000
    with pytest.raises(UploadRefused, match="larger than the 100,000-byte upload limit"):
        await _upload(settings, tenant, data)
    assert _blobs(settings, tenant.workspace_id) == []
    assert await _imports_of(owner_pool, tenant.workspace_id) == 0


async def test_exactly_at_the_limit_is_accepted(stack: Stack, tenant: Tenant) -> None:
    data = csv_bytes([["email"]] + [[f"u{i}@example.com"] for i in range(100)])
    settings = make_settings(stack, upload_max_bytes=len(data), preview_bytes=256)
    up = await _upload(settings, tenant, data)
    assert (up.file_bytes, up.total_rows) == (len(data), 100)
    assert _blobs(settings, tenant.workspace_id)[0].read_bytes() == data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"PK\x03\x04" + b"\x00" * 100, "ZIP archive"),
        (b"%PDF-1.7\n" + b"x" * 100, "PDF document"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "PNG image"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 50, "gzip-compressed"),
        (b"email\nab\x00cd@example.com\n", "looks binary"),
        (b"", "The file is empty"),
    ],
)
async def test_binary_and_empty_files_are_refused(
    stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, data: bytes, message: str
) -> None:
    settings = make_settings(stack)
    with pytest.raises(UploadRefused, match=message) as info:
        await _upload(settings, tenant, data)
    if data:
        assert "Save As > CSV" in str(info.value)
    assert await _imports_of(owner_pool, tenant.workspace_id) == 0
    assert _blobs(settings, tenant.workspace_id) == []


async def test_preview_headers_mapping_and_record_count(stack: Stack, tenant: Tenant) -> None:
    rows = [["E-mail", "First name", "Surname", "Organisation", "Tel", "Favourite colour"]]
    rows += [[f"p{i}@example.com", f"F{i}", f"L{i}", "Co", "1", "multi\nline"] for i in range(8)]
    up = await _upload(make_settings(stack), tenant, csv_bytes(rows, newline="\r\n"))
    assert up.headers == rows[0]
    assert up.mapping == [
        "email",
        "first_name",
        "last_name",
        "company",
        "phone",
        "custom:Favourite colour",
    ]
    assert up.preview == rows[1:6]
    # Quoted newlines are inside one record: 8 rows, not 16 lines.
    assert up.total_rows == 8


async def test_mapping_overrides_and_bad_override(stack: Stack, tenant: Tenant) -> None:
    data = csv_bytes([["Work", "Name"], ["a@example.com", "A"]])
    up = await _upload(make_settings(stack), tenant, data, ["Work=email", "Name=skip"])
    assert up.mapping == ["email", ""]
    from folksjobs.imports.mapping import MappingError

    with pytest.raises(MappingError, match="no column named 'Nope'"):
        await _upload(make_settings(stack), tenant, data, ["Nope=email"])


@pytest.mark.parametrize(
    ("raw", "encoding", "warned"),
    [
        ("email,name\nz@example.com,Zoë\n".encode("utf-16"), "utf-16", False),
        ("email,name\nz@example.com,Zoë\n".encode("utf-16-be"), "utf-16-be", False),
        (b"\xef\xbb\xbfemail,name\nz@example.com,Zo\xc3\xab\n", "utf-8-sig", False),
        ("email,name\nz@example.com,Zoë\n".encode("cp1252"), "cp1252", True),
    ],
)
async def test_encodings(
    stack: Stack, tenant: Tenant, raw: bytes, encoding: str, warned: bool
) -> None:
    settings = make_settings(stack)
    up = await _upload(settings, tenant, raw)
    assert up.format.encoding == encoding
    assert up.headers == ["email", "name"]
    assert up.preview == [["z@example.com", "Zoë"]]
    assert bool(up.warnings) is warned
    if warned:
        assert "not UTF-8: read as cp1252" in up.warnings[0]


async def test_delimiters_and_sep_line(stack: Stack, tenant: Tenant) -> None:
    settings = make_settings(stack)
    for raw, delim in [
        (b"email;name\na@example.com;A\n", ";"),
        (b"email\tname\na@example.com\tA\n", "\t"),
        (b"email|name\na@example.com|A\n", "|"),
        (b"sep=;\nemail;name\na@example.com;A\n", ";"),
    ]:
        up = await _upload(settings, tenant, raw)
        assert up.format.delimiter == delim
        assert up.headers == ["email", "name"]
        assert up.total_rows == 1


async def test_an_async_source_in_uneven_pieces_is_the_same_upload(
    stack: Stack, tenant: Tenant
) -> None:
    """The reading half takes any async byte source (an HTTP body arrives in pieces of any
    size, the head may span several): the blob, rows and preview equal the file upload's."""
    settings = make_settings(stack, preview_bytes=1000)
    data = csv_bytes([["email", "name"]] + [[f"p{i}@example.com", f"Zoë {i}"] for i in range(500)])

    async def pieces() -> AsyncIterator[bytes]:
        i, sizes = 0, [1, 7, 300, 2, 4096, 13]
        while i < len(data):
            n = sizes[i % len(sizes)]
            yield data[i : i + n]
            i += n
            await asyncio.sleep(0)

    from_file = await _upload(settings, tenant, data)
    async with open_services(settings, pool_size=2) as s:
        streamed = await upload_stream(s.pool, s.blob, settings, pieces(), "a/b\\c.csv",
                                       tenant.workspace_id, tenant.user_id)  # fmt: skip
    assert (streamed.total_rows, streamed.preview, streamed.headers) == (
        from_file.total_rows, from_file.preview, from_file.headers,
    )  # fmt: skip
    assert streamed.file_name == "c.csv"
    blob = Path(settings.blob_url) / streamed.blob_key
    assert blob.read_bytes() == data
