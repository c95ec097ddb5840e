"""ProcessCsv's old branches: the code that runs started before a patch still take on
replay, unchanged, kept out of `import_csv.py` so that file reads as the live path.

Each goes by the policy of docs/deploys.md ("Retiring a patch"): once no run started
before its patch can be open, the patch becomes `workflow.deprecate_patch` and its branch
here is deleted, with the histories that only this branch replays.

| branch                    | patch (the live path)                | runs that take it       |
|---------------------------|--------------------------------------|-------------------------|
| check_before_gate         | claim-import                         | before claim-import     |
|   check-import first      | check-import-before-gate             | before i19: none        |
|   as activities           | check-and-fetch-local                | before the local steps  |
| fetch_import              | claim-import                         | before claim-import     |
|   the chunker path only   | small-file-in-one-activity           | deprecated: none (step 1)|
| process_chunks_up_front   | chunks-as-slots-free                 | recorded at e3589b5     |
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.imports import ImportActivities
    from folksjobs.models import ChunkResult, ImportCursor, ProcessCsvInput

if TYPE_CHECKING:
    from workflows.import_chunks import ChunkedPath
    from workflows.import_csv import ProcessCsv

T = TypeVar("T")
# Runs started before this patch checked the record only after the gate (fetch-import).
CHECK_BEFORE_GATE = "check-import-before-gate"
# check-import and fetch-import as local activities; runs started before this change
# scheduled them as activities.
LOCAL_CHECKS = "check-and-fetch-local"
# A file of at most ImportOptions.inline_max_rows rows (one chunk) is one import-small
# activity. Deprecated (docs/deploys.md, step 1): runs started before it recorded
# inline_max_rows 0 and never reach the call; the call goes in the next release (step 2).
SMALL_IN_ONE_ACTIVITY = "small-file-in-one-activity"


async def check_before_gate(wf: ProcessCsv, inp: ProcessCsvInput) -> None:
    """check-import (which claims the record, through the same lifecycle.claim)."""
    if workflow.patched(CHECK_BEFORE_GATE):
        wf.stage = "check-import"
        await wf._refusing(inp, _short(wf, ImportActivities.check_import, inp))


async def fetch_import(wf: ProcessCsv, inp: ProcessCsvInput) -> ImportCursor:
    """fetch-import after the gate, then capture-start-time."""
    wf.stage = "fetch-import"
    record = await _short(wf, ImportActivities.fetch_import, inp)
    return wf._start(inp, record, _small)


def _small() -> bool:
    workflow.deprecate_patch(SMALL_IN_ONE_ACTIVITY)
    return True


async def _short(
    wf: ProcessCsv,
    fn: Callable[[ImportActivities, ProcessCsvInput], Awaitable[T]],
    inp: ProcessCsvInput,
) -> T:
    if workflow.patched(LOCAL_CHECKS):
        return await workflow.execute_local_activity_method(
            fn, inp, start_to_close_timeout=timedelta(seconds=30), retry_policy=wf.RETRY
        )
    return await workflow.execute_activity_method(
        fn, inp, start_to_close_timeout=timedelta(seconds=30), retry_policy=wf.RETRY
    )


async def process_chunks_up_front(
    wf: ChunkedPath,
    inp: ProcessCsvInput,
    cursor: ImportCursor,
    indexes: Sequence[int],
    done: Callable[[ImportCursor, ChunkResult], None],
) -> None:
    """A task per chunk of the run, created up front, each waiting for a window slot."""
    window = asyncio.Semaphore(max(1, cursor.options.parallel_chunks))

    async def one(i: int) -> None:
        async with window:
            r = await wf._process_chunk(inp, cursor, i)
        done(cursor, r)

    tasks: list[asyncio.Task[object]] = [asyncio.create_task(one(i)) for i in indexes]
    if wf.chunking is not None:
        # A failed chunking must stop the chunks waiting for it.
        tasks.append(wf.chunking)
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
