"""The CSV reader's fast path (blocks of lines) and exact path (line by line) agree.

Where a block ends must never change a record: the hostile corpus, read with blocks of
every size from one character (every record crosses a boundary) up to the default, gives
the same records, numbers and errors, and the upload and the chunker see the same rows.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from folksjobs.imports import chunker, csvstream
from folksjobs.imports.csvstream import CsvFormat, Record, detect_format, iter_records, open_text
from tests.corpus.generate import generate


def read(data: bytes, fmt: CsvFormat, block: int) -> list[Record] | str:
    """The records, or the refusal (the same at every block size too)."""
    old = csvstream._BLOCK_CHARS
    csvstream._BLOCK_CHARS = block
    try:
        return list(iter_records(open_text(io.BytesIO(data), fmt), fmt, 4096))
    except csvstream.CsvRefused as e:
        return str(e)
    finally:
        csvstream._BLOCK_CHARS = old


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("corpus-paths")
    generate(directory)
    return sorted(p for p in directory.iterdir() if p.is_file())


def test_every_block_size_gives_the_same_records(corpus: list[Path]) -> None:
    compared = 0
    for path in corpus:
        data = path.read_bytes()
        try:
            fmt = detect_format(data[:8192])
        except csvstream.CsvRefused:
            continue
        if len(data) > 2_000_000:
            continue  # the size cases: nothing new at a boundary, and slow at one char
        expected = read(data, fmt, 1)
        for block in (7, 100, 4096, 256 * 1024):
            assert read(data, fmt, block) == expected, f"{path.name}, blocks of {block}"
        compared += 1
    assert compared >= 40


def test_a_bad_quote_costs_one_row_on_either_side_of_a_block_boundary() -> None:
    lines = [b"email,name\n"] + [b"u%d@example.com,n%d\n" % (i, i) for i in range(200)]
    lines[100] = b'u99@example.com,"never closed\n'
    data = b"".join(lines)
    fmt = CsvFormat("utf-8", ",")
    for block in (1, 64, 1000, 1 << 20):
        records = read(data, fmt, block)
        assert not isinstance(records, str) and len(records) == 201, block
        bad = [r for r in records if r.cells is None]
        assert [r.row for r in bad] == [101], block
        assert "unterminated quoted field at line 101" in (bad[0].error or "")
        assert records[-1] == Record(201, ["u199@example.com", "n199"])


def test_chunker_frames_carry_every_row_once(tmp_path: Path) -> None:
    lines = [b"email,name\n"] + [b"U%d@Example.com ,n%d\n" % (i % 150, i) for i in range(400)]
    path = tmp_path / "f.csv"
    path.write_bytes(b"".join(lines))
    spec = chunker.ChunkSpec("utf-8", ",", False, 4096, [0], 200, str(path))
    with path.open("rb") as raw:
        frames = list(chunker.frames(raw, spec))
    assert [f[0] for f in frames] == [0, 1] and frames[-1][1] == 400
    chunks = [chunker.unpack(chunker.pack([], f[2])) for f in frames]
    assert [(c.first_row, len(c.cells)) for c in chunks] == [(2, 200), (202, 200)]
    assert chunks[0].cells[0] == ["U0@Example.com ", "n0"]
    assert chunks[0].emails[0] == "u0@example.com"  # normalised once, by the chunker
    # Inside a chunk the last row of an email wins. Chunk 0 (rows 2..201) carries u0..u149
    # and then u0..u49 again; chunk 1 (rows 202..401) u50..u149, then u0..u99.
    assert sorted(frames[0][3]) == list(range(2, 52))
    assert sorted(frames[1][3]) == list(range(202, 252))
    assert len(frames[0][4]) == 150 and len(frames[1][4]) == 150


def test_only_our_own_export_loses_its_formula_guard() -> None:
    """The guard's quote comes off in a file with our export's header, by csvsafe's exact
    rule; any other file keeps every quote as data."""
    fixed = "email,first_name,last_name,company,phone,avatar_url,created_at,updated_at,tags"
    cells = "a@example.com,'90s,O'Brien,'=SUM(A1),'+33 1 23,,t0,t0,vip,'@x,'+1415"
    fmt = CsvFormat("utf-8", ",")
    ours = read(f"{fixed},'=key,plain\r\n{cells}\r\n".encode(), fmt, 4096)
    labels = fixed.replace("tags", "labels")
    other = read(f"{labels},'=key,plain\r\n{cells}\r\n".encode(), fmt, 4096)
    assert not isinstance(ours, str) and not isinstance(other, str)
    assert ours[0].cells is not None and ours[0].cells[-2:] == ["=key", "plain"]
    assert ours[1].cells == [
        "a@example.com", "'90s", "O'Brien", "=SUM(A1)", "+33 1 23", "", "t0", "t0", "vip",
        "@x", "'+1415",
    ]  # fmt: skip
    assert other[0].cells is not None and other[0].cells[-2:] == ["'=key", "plain"]
    assert other[1].cells == cells.split(",")
