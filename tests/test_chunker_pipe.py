"""The chunker's pipe, both ends in one module: the child writes frames, `run` reads them
back as named tuples, from a path or from bytes fed on stdin, and a child that dies says
why."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from folksjobs.imports import chunker


def _spec(path: Path | None) -> chunker.ChunkSpec:
    return chunker.ChunkSpec("utf-8", ",", False, 4096, [0], 3, None if path is None else str(path))


CSV = b"email,name\n" + b"".join(b"u%d@example.com,n%d\n" % (i % 4, i) for i in range(7))


async def _chunk(
    spec: chunker.ChunkSpec, source: AsyncIterator[bytes] | None
) -> tuple[chunker.Done, list[chunker.Frame]]:
    frames: list[chunker.Frame] = []

    async def store(frame: chunker.Frame) -> None:
        frames.append(frame)

    return await chunker.run(spec, source, store), frames


async def _bytes(data: bytes, size: int = 5) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("via", ["path", "stdin"])
async def test_frames_come_back_as_named_tuples(tmp_path: Path, via: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(CSV)
    if via == "path":
        done, frames = await _chunk(_spec(path), None)
    else:
        done, frames = await _chunk(_spec(None), _bytes(CSV))
    assert done == chunker.Done(chunks=3, rows=7)
    assert [(f.chunk_index, f.rows) for f in frames] == [(0, 3), (1, 6), (2, 7)]
    # Rows 2..4 are u0, u1, u2; 5..7 u3, u0, u1 (u0's row 6 supersedes nothing in its chunk).
    assert frames[1].superseded == [] and len(frames[1].digests) == len(frames[1].last_rows) == 3
    chunk = chunker.unpack(chunker.pack([], frames[2].blob))
    assert (chunk.first_row, chunk.emails) == (8, ["u2@example.com"])


async def test_a_child_that_dies_says_why() -> None:
    bad = dataclasses.replace(_spec(None), encoding="no-such-codec")
    with pytest.raises(chunker.ChunkerFailed, match=r"exited with status 1: .*no-such-codec"):
        await _chunk(bad, _bytes(CSV))


@pytest.mark.parametrize("via", ["path", "stdin"])
async def test_a_store_that_fails_ends_the_child_at_once(tmp_path: Path, via: str) -> None:
    """Redis failing mid-chunking: the error comes back, and the child is gone, even when
    it had filled the pipe (it once hung here, waiting for a child whose pipe was full)."""
    data = b"email,name\n" + b"".join(
        b"u%d@example.com,%s\n" % (i, b"x" * 60) for i in range(60_000)
    )
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    spec = dataclasses.replace(_spec(path if via == "path" else None), chunk_rows=1000)

    async def store(frame: chunker.Frame) -> None:
        await asyncio.sleep(0.5)  # the child fills the pipe meanwhile
        raise ConnectionError("Connection closed by server.")

    source = None if via == "path" else _bytes(data, 1 << 16)
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(chunker.run(spec, source, store), 30)


@pytest.mark.parametrize("via", ["path", "stdin"])
@pytest.mark.parametrize(
    ("first", "stop", "sent", "done"),
    [
        (1, 2, [1], chunker.Done(2, 6, eof=False)),
        (2, None, [2], chunker.Done(3, 7)),
        (0, 3, [0, 1, 2], chunker.Done(3, 7)),  # the file ends with the range
        (0, 1, [0], chunker.Done(1, 3, eof=False)),
    ],
)
async def test_a_range_of_chunks(
    tmp_path: Path, via: str, first: int, stop: int | None, sent: list[int], done: chunker.Done
) -> None:
    """One workflow run's share: chunks before the range are parsed, not sent; the child
    stops at the range's end and says it did not reach the file's."""
    path = tmp_path / "f.csv"
    path.write_bytes(CSV)
    spec = dataclasses.replace(_spec(path if via == "path" else None), first_chunk=first,
                               stop_chunk=stop)  # fmt: skip
    got, frames = await _chunk(spec, None if via == "path" else _bytes(CSV))
    assert [f.chunk_index for f in frames if f.skipped] == list(range(first))
    frames = [f for f in frames if not f.skipped]
    assert (got, [f.chunk_index for f in frames]) == (done, sent)
    whole = {f.chunk_index: f for f in (await _chunk(_spec(path), None))[1]}
    assert frames == [whole[i] for i in sent]  # the same chunks as a whole-file read
