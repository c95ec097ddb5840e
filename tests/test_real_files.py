"""Real-world files: the reader's rules (issue 15) and a hostile file's limits (issue 19).

The parser rules run without servers, at every block size of the fast path; what a user
sees (stored values, the export, refusals at upload) runs against the real stack.
"""

from __future__ import annotations

import codecs
import io
import json
import time
import tracemalloc
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.imports import csvstream
from folksjobs.imports.csvstream import (
    CsvRefused,
    Record,
    detect_format,
    iter_records,
    open_text,
    read_header,
)
from folksjobs.imports.uploads import UploadRefused
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import parse, run_export
from tests.importing import contacts, import_bytes, import_row, upload

BLOCKS = (1, 7, 100, 4096, 256 * 1024)


def read(data: bytes, block: int = 256 * 1024, limit: int = 1 << 20) -> list[Record]:
    fmt = detect_format(data[: 64 * 1024])
    old = csvstream._BLOCK_CHARS
    csvstream._BLOCK_CHARS = block
    try:
        return list(iter_records(open_text(io.BytesIO(data), fmt), fmt, limit))
    finally:
        csvstream._BLOCK_CHARS = old


def cells(data: bytes, block: int = 256 * 1024) -> list[list[str] | None]:
    return [r.cells for r in read(data, block)]


# --- records ----------------------------------------------------------------------------


@pytest.mark.parametrize("nl", ["\n", "\r\n", "\r"])
def test_quoted_line_breaks_of_any_kind_stay_in_one_record(nl: str) -> None:
    inner = ["one\rtwo", "one\ntwo", "one\r\ntwo", "\n\r", "\r\r\n", "end\r", "\rstart"]
    rows = [f'u{i}@example.com,"{v}",x' for i, v in enumerate(inner)]
    data = nl.join(["email,note,z", *rows, "last@example.com,plain,x"]).encode() + nl.encode()
    want = [["email", "note", "z"], *([f"u{i}@example.com", v, "x"] for i, v in enumerate(inner))]
    want.append(["last@example.com", "plain", "x"])
    for block in BLOCKS:
        assert cells(data, block) == want, (nl, block)


def test_a_closed_quoted_note_of_1500_lines_is_one_field() -> None:
    """Issue 19 finding 7: past 1,000 lines the note's lines came back as rows."""
    note = "\n".join(f"line {i}, with a comma" for i in range(1500))
    data = f'email,note\na@example.com,"{note}"\nb@example.com,x\n'.encode()
    for block in BLOCKS:
        assert cells(data, block) == [
            ["email", "note"],
            ["a@example.com", note],
            ["b@example.com", "x"],
        ], block


def test_an_unclosed_quote_still_costs_one_row_within_the_field_limit() -> None:
    rows = [f"u{i}@example.com,n{i}" for i in range(300)]
    rows[10] = 'u10@example.com,"never closed'
    data = "\n".join(["email,name", *rows]).encode() + b"\n"
    for block in BLOCKS:
        recs = read(data, block, limit=1000)  # the open quote passes the limit at ~line 60
        assert len(recs) == 301, block
        assert [r.row for r in recs if r.cells is None] == [12], block
        assert "unterminated quoted field at line 12" in (recs[11].error or "")
        assert recs[-1].cells == ["u299@example.com", "n299"]


# --- the header ---------------------------------------------------------------------------


def test_blank_lines_and_a_sep_line_before_the_header_are_skipped() -> None:
    data = b"\r\n\r\nsep=;\r\nemail;name\r\na@example.com;Ann, Lee\r\n"
    fmt = detect_format(data)
    assert (fmt.delimiter, fmt.sep_line, fmt.header_line) == (";", True, 4)
    assert cells(data) == [["email", "name"], ["a@example.com", "Ann, Lee"]]


LINKEDIN = (
    "Notes:\n"
    '"When exporting your connection data, you may notice that some of the email addresses'
    " are missing. You will only see email addresses for connections who have allowed their"
    ' connections to see or download their email address using this setting."\n'
    "\n"
    "First Name,Last Name,URL,Email Address,Company,Position,Connected On\n"
    "Ann,Lee,https://www.linkedin.com/in/ann,ann@example.com,Acme,CTO,01 Jan 2024\n"
)


def test_a_linkedin_preamble_is_skipped_and_the_header_line_named() -> None:
    data = LINKEDIN.encode()
    fmt = detect_format(data)
    assert (fmt.delimiter, fmt.header_line) == (",", 4)
    for block in BLOCKS:
        got = cells(data, block)
        assert got[0] == ["First Name", "Last Name", "URL", "Email Address", "Company",
                          "Position", "Connected On"]  # fmt: skip
        assert got[1] is not None and got[1][3] == "ann@example.com" and len(got) == 2


def test_the_delimiter_is_found_after_a_quoted_newline_in_the_header() -> None:
    data = b'email;"Full\nname";city\na@example.com;Ann Lee;Paris\n'
    assert detect_format(data).delimiter == ";"


@pytest.mark.parametrize(
    ("header", "row", "delimiter"),
    [
        ("E-mail;Nom, prénom;Société, SA, Ltd", "a@example.com;Lee, Ann;Acme, SA, Ltd", ";"),
        ("email,notes; misc,tags; a; b; c", "a@example.com,x; y,t; u; v; w", ","),
        ("email|name, full|a, b, c", "a@example.com|Lee, Ann|x, y, z", "|"),
        ("email\tname; a; b\tnote, x, y", "a@example.com\tLee; Ann\tx, y", "\t"),
    ],
)
def test_the_delimiter_survives_separators_inside_header_names(
    header: str, row: str, delimiter: str
) -> None:
    """Issue 19 finding 7: the guess counted `,` and `;` in the header line alone."""
    data = f"{header}\n{row}\n{row}\n".encode()
    assert detect_format(data).delimiter == delimiter


def header_of(names: list[str], max_columns: int | None = None) -> csvstream.Header:
    return read_header(iter([Record(1, names)]), max_columns)


def test_duplicate_names_get_suffixes_no_real_column_has() -> None:
    h = header_of(["a", "a", "a_2", "", "column_4", "a"])
    assert h.names == ["a", "a_3", "a_2", "column_4_2", "column_4", "a_4"]
    assert len(set(h.names)) == len(h.names) and len(h.warnings) == 3


def test_columns_are_capped_and_warnings_counted() -> None:
    with pytest.raises(CsvRefused, match="2,001 columns; at most 2,000"):
        header_of(["x"] * 2001, 2000)
    h = header_of(["x"] * 2000, 2000)
    capped = csvstream.cap_warnings(h.warnings)
    assert len(h.warnings) == 1999 and len(capped) == 21
    assert capped[-1] == "... and 1,979 more warnings"


# --- encodings ------------------------------------------------------------------------------

LEGACY = {
    "cp1252": "email,first_name,company\nzoe@example.com,Zoë,Café “Quotes” €\n"
    "ann@example.com,Åsa,Smörgås AB\n",
    "cp1251": "email,имя\nivan@example.com,Иван Петров\nolga@example.com,Ольга Смирнова\n",
    "shift_jis": "email,名前\ntaro@example.com,山田太郎\nhana@example.com,佐藤花子\n",
    "gb18030": "email,名字\nwang@example.com,王小明\nli@example.com,李华\n",
}


@pytest.mark.parametrize("encoding", list(LEGACY))
def test_a_legacy_encoding_is_detected_and_decodes_exactly(encoding: str) -> None:
    text = LEGACY[encoding]
    fmt = detect_format(text.encode(encoding))
    assert fmt.legacy and codecs.lookup(fmt.encoding) == codecs.lookup(encoding)
    want = [line.split(",") for line in text.splitlines()]
    assert cells(text.encode(encoding)) == want


def test_the_user_names_the_encoding_when_detection_cannot() -> None:
    text = "email,jmeno\njan@example.com,Jiří Dvořák\n"
    data = text.encode("cp1250")
    fmt = detect_format(data, encoding="cp1250")
    assert fmt.encoding == "cp1250"
    got = list(iter_records(open_text(io.BytesIO(data), fmt), fmt, 1 << 20))
    assert got[1].cells == ["jan@example.com", "Jiří Dvořák"]
    for bad in ("klingon", "zlib", "base64"):  # the last two are codecs, but not text
        with pytest.raises(CsvRefused, match=f"Unknown encoding '{bad}'; use one of utf-8"):
            detect_format(data, encoding=bad)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom(codec: str) -> None:
    text = "email,name\nzoe@example.com,Zoë 日本\n"
    fmt = detect_format(text.encode(codec))
    assert fmt.encoding == codec
    assert cells(text.encode(codec)) == [["email", "name"], ["zoe@example.com", "Zoë 日本"]]


# --- against the real stack ---------------------------------------------------------------


class _Endless(io.RawIOBase):
    """A file of `size` bytes made of one repeated piece, never held in memory."""

    def __init__(self, piece: bytes, size: int) -> None:
        self.piece, self.left = piece * (65536 // len(piece)), size

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left, len(self.piece))
        buf[:n] = self.piece[:n]
        self.left -= n
        return n


async def test_a_150mb_header_line_is_refused_in_seconds_in_little_memory(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """Issue 19 finding 6: a 150 MB header of one repeated name took 14 GB."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        from folksjobs.imports.uploads import upload_csv

        source = io.BufferedReader(_Endless(b"email,", 150 * 1024 * 1024))
        tracemalloc.start()
        t0 = time.monotonic()
        try:
            with pytest.raises(UploadRefused, match="longer than 1,048,576 characters"):
                await upload_csv(services.pool, services.blob, settings, source, "h.csv",
                                 tenant.workspace_id, tenant.user_id)  # fmt: skip
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - t0 < 10
        assert peak < 64 * 1024 * 1024, peak
        n = await owner_pool.fetchval(
            "SELECT count(*) FROM imports WHERE workspace_id = $1::uuid", tenant.workspace_id
        )
        assert n == 0


async def test_header_caps_at_upload(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """Issue 19 finding 6: 2,001 columns are refused; 1,500 repeated names store 21 warnings."""
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        wide = ",".join(["email", *(f"c{i}" for i in range(2000))]) + "\na@example.com\n"
        with pytest.raises(UploadRefused, match="2,001 columns; at most 2,000"):
            await upload(services, settings, tenant.workspace_id, tenant.user_id, wide.encode())
        same = ",".join(["email", *["note"] * 1500]) + "\na@example.com\n"
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, same.encode())
        stored = (await import_row(owner_pool, up.import_id))["warnings"]
        assert len(stored) == 21 and stored[-1] == "... and 1,479 more warnings"
        assert up.headers[:3] == ["email", "note", "note_2"] and len(set(up.headers)) == 1501


async def test_values_are_stored_and_exported_verbatim(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    """Custom fields keep every character; standard fields are trimmed; the export gives
    back exactly what was stored (import, export, parse, compare)."""
    # (value, written unquoted): spaces and quotes inside an unquoted field are data too.
    notes = [("  lead and trail\t", False), ("  bare  ", True), (" ", False), (" ", True),
             ('say "hi" here', True), ("one\rtwo", False), ("one\r\ntwo", False),
             ("a\nb\n", False), ("\r", False), ("\ttab", True), ("=1+1", True)]  # fmt: skip
    body = ["email,first_name,company,note,empty"]
    for i, (note, bare) in enumerate(notes):
        cell = note if bare else '"' + note.replace('"', '""') + '"'
        body.append(f"u{i}@example.com,  Ann {i}\t,\tAcme  ,{cell},")
    data = ("\r\n".join(body) + "\r\n").encode()
    settings = make_settings(
        stack, temporal_task_queue=task_queue, export_neutralise_formulas=False
    )
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert up.total_rows == result["total_rows"] == len(notes) == result["inserted"]
    stored = await contacts(owner_pool, tenant.workspace_id)
    for i, (note, _) in enumerate(notes):
        c = stored[f"u{i}@example.com"]
        assert (c["first_name"], c["company"]) == (f"Ann {i}", "Acme")
        custom = c["custom_fields"]
        assert (custom if isinstance(custom, dict) else json.loads(custom)) == {"note": note}, i
    _, _, exported = await run_export(client, settings, task_queue, tenant.workspace_id)
    _, rows = parse(exported)
    by_email = {r["email"]: r for r in rows}
    for i, (note, _) in enumerate(notes):
        r = by_email[f"u{i}@example.com"]
        assert (r["first_name"], r["company"], r["note"]) == (f"Ann {i}", "Acme", note), i
        assert r.get("empty", "") == ""


async def test_google_address_lists_and_fallback_email_columns(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    data = (
        b"First Name,Last Name,E-mail 1 - Label,E-mail 1 - Value,E-mail 2 - Label,"
        b"E-mail 2 - Value\n"
        b"Ann,Lee,* Home,not an address ::: ANN@example.com ::: ann2@example.com,Work,"
        b"ann@work.example.com\n"
        b"Bob,Ng,,,Work,bob@example.com\n"
        b"Cy,Ho,,nope,,also-nope\n"
    )
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert any("first valid address of 'E-mail 1 - Value', 'E-mail 2 - Value'" in w
               for w in up.warnings)  # fmt: skip
    assert (result["inserted"], result["failed"]) == (2, 1)
    assert result["error_samples"][0]["row"] == 4
    # The first non-empty candidate ("nope") is the one the reason is about.
    assert result["error_samples"][0]["reason"] == (
        "invalid email address: An email address must have an @-sign."
    )
    stored = await contacts(owner_pool, tenant.workspace_id)
    custom = {e: c["custom_fields"] for e, c in stored.items()}
    custom = {e: v if isinstance(v, dict) else json.loads(v) for e, v in custom.items()}
    assert custom["ann@example.com"] == {
        "E-mail 1 - Label": "* Home",
        "E-mail 1 - Value": "not an address ::: ANN@example.com ::: ann2@example.com",
        "E-mail 2 - Label": "Work",
        "E-mail 2 - Value": "ann@work.example.com",
    }
    assert custom["bob@example.com"] == {"E-mail 2 - Label": "Work",
                                         "E-mail 2 - Value": "bob@example.com"}  # fmt: skip


async def test_no_email_column_is_said_at_upload_and_stays_pending(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    settings = make_settings(stack, temporal_task_queue=task_queue)
    data = b"Name,Contact\nAnn,ann@example.com\n"
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id, data)
    assert "no column maps to email (headers: Name, Contact); closest: Contact" in up.warnings[0]
    assert (await import_row(owner_pool, up.import_id))["status"] == "pending"


async def test_the_test_domain_setting_reaches_the_chunker_and_the_mapper(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, owner_pool: asyncpg.Pool
) -> None:
    data = b'email,name\nann@mail.test,Ann\n"bob@x.test ::: b",Bob\ncy@x.localhost,Cy\n'
    settings = make_settings(stack, temporal_task_queue=task_queue, email_test_domains=True)
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, data
        )
    assert (result["inserted"], result["failed"]) == (2, 1)
    assert set(await contacts(owner_pool, tenant.workspace_id)) == {"ann@mail.test", "bob@x.test"}
