"""Quoted line breaks of any kind stay inside their record, whatever the file's own line
terminator, at every block size of the streaming reader (issue 30, item 9).

The files are written by Python's csv module with each terminator ('\\n', '\\r', '\\r\\n'),
their quoted fields holding the other breaks (a lone CR, a lone LF, CRLF, several in a
row), and Python's own csv reader is the reference.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.imports import chunker, csvstream
from folksjobs.imports.csvstream import detect_format, iter_records, open_text
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import contacts, import_bytes

BREAKS = ["\r", "\n", "\r\n", "\r\r", "\n\n", "\n\r"]
TERMINATORS = ["\n", "\r", "\r\n"]
Quoting = Literal[0, 1, 2, 3]  # csv.QUOTE_*, as typeshed spells them


def python_file(terminator: str, rows: int = 60, quoting: Quoting = csv.QUOTE_MINIMAL) -> str:
    """A contacts file as Python's csv writer makes it. Every cell with a break holds a
    comma, so even Python 3.11's writer (which leaves a lone CR unquoted under a '\\n'
    terminator) quotes it: the breaks are inside quoted fields, as the issue has them."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=terminator, quoting=quoting)
    writer.writerow(["email", "first_name", "note"])
    for i in range(rows):
        b = BREAKS[i % len(BREAKS)]
        note = f"line one{b}line two, {i}{b}" if i % 2 else f"{b}starts{b}{b}ends, {i}"
        writer.writerow([f"u{i}@example.com", f"N{b}{i}, jr" if i % 3 == 0 else f"N{i}", note])
    return out.getvalue()


def reference(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def streamed(data: bytes, block: int) -> list[list[str] | str]:
    fmt = detect_format(data[:8192])
    assert fmt.delimiter == ","
    old = csvstream._BLOCK_CHARS
    csvstream._BLOCK_CHARS = block
    try:
        recs = iter_records(open_text(io.BytesIO(data), fmt), fmt, 1 << 20)
        return [r.cells if r.cells is not None else r.error or "" for r in recs]
    finally:
        csvstream._BLOCK_CHARS = old


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL])
@pytest.mark.parametrize("terminator", TERMINATORS, ids=["LF", "CR", "CRLF"])
def test_python_written_files_read_as_python_reads_them(terminator: str, quoting: Quoting) -> None:
    text = python_file(terminator, quoting=quoting)
    expected = reference(text)
    assert len(expected) == 61 and all(len(r) == 3 for r in expected)  # quoted, truly
    assert any("\r" in r[2] and "\n" not in r[2] for r in expected)  # a lone CR
    assert any("\n" in r[2] and "\r" not in r[2] for r in expected)  # a lone LF
    data = text.encode()
    for block in (1, 2, 3, 7, 64, 1000, 256 * 1024):
        assert streamed(data, block) == expected, f"blocks of {block}"


@pytest.mark.parametrize("terminator", TERMINATORS, ids=["LF", "CR", "CRLF"])
def test_the_chunker_cuts_python_written_files_into_the_same_records(
    terminator: str, tmp_path: Path
) -> None:
    text = python_file(terminator, rows=500)
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    spec = chunker.ChunkSpec("utf-8", ",", False, 1 << 20, [0], 64, str(path))
    with path.open("rb") as raw:
        chunks = [chunker.unpack(chunker.pack([], f.blob)) for f in chunker.frames(raw, spec)]
    assert [c for chunk in chunks for c in chunk.cells] == reference(text)[1:]
    assert all(not chunk.errors for chunk in chunks)


async def test_an_import_keeps_every_quoted_break(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """Through the upload and the chunker child on real servers, '\\r' and '\\n' files."""
    settings = make_settings(stack, temporal_task_queue=task_queue, import_inline_max_rows=0)
    text = python_file("\n", rows=40)
    async with running_worker(client, settings, task_queue) as services:
        for terminator in ("\n", "\r"):
            workspace = tenant.workspace_id
            up, result = await import_bytes(
                client, services, settings, workspace, tenant.user_id,
                python_file(terminator, rows=40).encode(),
            )  # fmt: skip
            # The '\r' file reads as the '\n' one did: the same 40 contacts, unchanged.
            matched = "inserted" if terminator == "\n" else "unchanged"
            assert up.total_rows == 40 and result[matched] == 40
            assert result["failed"] == 0
    stored = await contacts(owner_pool, tenant.workspace_id)
    for row in reference(text)[1:]:
        got = stored[row[0]]
        assert (got["first_name"], got["custom_fields"]["note"]) == (row[1].strip(), row[2])
