"""How far download-and-chunk may run ahead of process-batch: Redis bounded by design.

The chunker parses faster than process-batch commits, and a chunk waits in Redis until
its process-batch has committed it and deleted its key. Unbounded, a 10M-row file's
chunks piled up in Redis ahead of the commits (1.26 GB measured). So the chunker stores a
chunk only while fewer than `limit` of its chunks are still in Redis: an import holds at
most `limit` x chunk size there, whatever the file's size; when process-batch is slow,
the chunker waits, and the pipe's buffer holds its child back in turn.

The keys themselves are the count: process-batch deletes a chunk's key once committed,
and an expired or flushed one is gone too (process-batch then reports it lost). No
counter to keep right across retries and crashes.

No deadlock: the workflow schedules process-batch in chunk order, `parallel_chunks` at a
time, and `limit` is at least that, so the chunks held in Redis are always ones whose
process-batch is scheduled (the chunk order holds within a run's range, which is what
one download-and-chunk stores: ChunkPlan.stop_chunk). A chunk whose process-batch has
already committed from an earlier copy (stored by an earlier attempt or generation, or by
a release that chunked the whole file at once) is never held: the chunker checks the
ledger after each store and drops such a copy (activities/imports/chunked.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from redis.asyncio import Redis


class BacklogStuck(RuntimeError):
    """No chunk held in Redis was processed for `patience` seconds."""


class ChunkBacklog:
    def __init__(
        self, redis: Redis, limit: int, patience: float, poll_seconds: float = 0.05
    ) -> None:
        """`limit` 0: no bound (plans from runs started before it). `patience`: how long
        the held chunks may all stay unprocessed before BacklogStuck (their process-batch
        attempts wait on something that waits on this chunker: a rebuild of lost chunks
        waits for the chunking it replaces to end)."""
        self.redis = redis
        self.limit = limit
        self.patience = patience
        self.poll_seconds = poll_seconds
        self.held: deque[str] = deque()

    async def room(self) -> None:
        """Returns once one more chunk may be stored."""
        if not self.limit:
            return
        since = time.monotonic()
        while len(self.held) >= self.limit:
            if time.monotonic() - since > self.patience:
                raise BacklogStuck(
                    f"none of the {len(self.held)} chunks waiting in Redis was processed "
                    f"in {self.patience:.0f} s"
                )
            pipe = self.redis.pipeline(transaction=False)
            for key in self.held:
                pipe.exists(key)
            present = await pipe.execute()
            self.held = deque(k for k, n in zip(self.held, present, strict=True) if n)
            if len(self.held) >= self.limit:
                await asyncio.sleep(self.poll_seconds)

    def stored(self, key: str) -> None:
        if self.limit:
            self.held.append(key)
