"""The folksjobs worker: registers the enabled jobs' workflows and activities and runs them.

    python worker.py            # against TEMPORAL_ADDRESS, DATABASE_URL, REDIS_URL, ...

Settings -> clients -> activity objects -> Worker, until SIGTERM/SIGINT; then in-flight
activities get `WORKER_GRACEFUL_SHUTDOWN_SECONDS` to finish before they are handed back.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import (
    Interceptor,
    StartActivityInput,
    Worker,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)
from temporalio.workflow import ActivityHandle

from activities.avatars import AvatarActivities
from activities.deletion import DeletionActivities
from activities.digest import DigestActivities
from activities.exports import ExportActivities
from activities.gate import GateActivities
from activities.imports import ImportActivities
from activities.retention import RetentionActivities
from activities.uploads import UploadActivities
from activities.welcome import WelcomeActivities
from folksjobs.catalog import JobSpec, job_by_name
from folksjobs.infra import logsafe
from folksjobs.infra.health import WorkerHealth, polled_queues, serving_health
from folksjobs.infra.logs import setup_logging
from folksjobs.infra.memory import limit_arenas
from folksjobs.infra.metrics import build_runtime
from folksjobs.infra.temporal import connect
from folksjobs.infra.versioning import deployment_config
from folksjobs.models import avatars_task_queue, chunking_task_queue
from folksjobs.services import Services, open_services
from folksjobs.settings import Settings, get_settings
from workflows.delete_user import DeleteUser
from workflows.delete_workspace import DeleteWorkspace
from workflows.discard_uploads import DiscardStaleUploads
from workflows.enrich_avatars import EnrichAvatars
from workflows.expire_files import ExpireFiles
from workflows.export_csv import ProcessExport
from workflows.gate import EXPORT_GATE, IMPORT_GATE, SlotGate
from workflows.import_csv import ProcessCsv
from workflows.pinned import PINNED
from workflows.send_welcome import SendWelcome
from workflows.weekly_digest import WeeklyDigest

log = logging.getLogger("folksjobs.worker")


@dataclass(frozen=True)
class Job:
    """A job of the catalog (name, flag, trigger...) with the workflows and activities
    that run it, the activities built from the clients."""

    spec: JobSpec
    workflows: Sequence[type]
    activities: Callable[[Services], Sequence[Callable[..., Any]]]

    @property
    def name(self) -> str:
        return self.spec.job

    @property
    def flag(self) -> str:
        return self.spec.flag


def _welcome(s: Services) -> list[Callable[..., Any]]:
    return WelcomeActivities(s.pool, s.email, s.settings).activities()


def _import_activities(s: Services) -> ImportActivities:
    return ImportActivities(s.pool, s.redis, s.blob, s.gravatar, s.ai, s.email, s.settings)


def _avatar_activities(s: Services) -> AvatarActivities:
    return AvatarActivities(s.pool, s.gravatar, s.settings)


def _import(s: Services) -> list[Callable[..., Any]]:
    # download-and-chunk stays here too: runs started before it had its own queue
    # (build_chunk_workers) still schedule it on this one. lookup-avatars is served only by
    # build_avatars_worker: that queue's rate is the cluster's Gravatar rate.
    avatars = _avatar_activities(s)
    return [*_import_activities(s).activities(), avatars.avatars_owed, avatars.drop_avatars]


def _digest(s: Services) -> list[Callable[..., Any]]:
    return DigestActivities(s.pool, s.email, s.settings).activities()


def _export(s: Services) -> list[Callable[..., Any]]:
    return ExportActivities(s.pool, s.blob, s.email, s.settings).activities()


def _uploads(s: Services) -> list[Callable[..., Any]]:
    return UploadActivities(s.pool, s.blob, s.settings).activities()


def _retention(s: Services) -> list[Callable[..., Any]]:
    return RetentionActivities(s.pool, s.blob, s.settings).activities()


def _deletion(s: Services) -> list[Callable[..., Any]]:
    return DeletionActivities(s.pool, s.blob, s.settings).activities()


def _no_activities(s: Services) -> list[Callable[..., Any]]:
    # delete-user's steps are delete-workspace's class's: registered once, with that job.
    return []


JOBS: list[Job] = [
    Job(job_by_name("process-csv"), [ProcessCsv, EnrichAvatars], _import),
    Job(job_by_name("send-welcome"), [SendWelcome], _welcome),
    Job(job_by_name("process-export"), [ProcessExport], _export),
    Job(job_by_name("weekly-digest"), [WeeklyDigest], _digest),
    Job(job_by_name("discard-stale-uploads"), [DiscardStaleUploads], _uploads),
    Job(job_by_name("expire-files"), [ExpireFiles], _retention),
    Job(job_by_name("delete-workspace"), [DeleteWorkspace], _deletion),
    Job(job_by_name("delete-user"), [DeleteUser], _no_activities),
]


# Registered whatever the flags: the per-workspace import and export gates
# (workflows/gate.py).
SUPPORT_WORKFLOWS: list[type] = [SlotGate]


def _support(s: Services) -> tuple[list[type], list[Callable[..., Any]]]:
    gate = GateActivities(
        {
            IMPORT_GATE: s.settings.imports_per_workspace_limit,
            EXPORT_GATE: s.settings.exports_per_workspace_limit,
        }
    )
    return list(SUPPORT_WORKFLOWS), gate.activities()


def all_workflows() -> list[type]:
    """Every workflow class of the build, flags aside (for the contract)."""
    return [*SUPPORT_WORKFLOWS, *(wf for job in JOBS for wf in job.workflows)]


def enabled_jobs(settings: Settings) -> list[Job]:
    return [j for j in JOBS if getattr(settings, j.flag)]


def build_worker(client: Client, services: Services, *, task_queue: str | None = None) -> Worker:
    settings = services.settings
    jobs = enabled_jobs(settings)
    workflows, activities = _support(services)
    for job in jobs:
        workflows += job.workflows
        activities += job.activities(services)
    queue = task_queue or settings.temporal_task_queue
    versioning = deployment_config(settings)
    if versioning is not None:
        workflows = [PINNED.get(wf, wf) for wf in workflows]
        log.info("worker deployment version %s", versioning.version.to_canonical_string())
    log.info(
        "registering jobs %s on task queue %r (disabled: %s)",
        [j.name for j in jobs],
        queue,
        [j.name for j in JOBS if j not in jobs] or "none",
    )
    with _no_gc_finalizers():
        return Worker(
            client,
            task_queue=queue,
            workflows=workflows,
            activities=activities,
            max_concurrent_activities=settings.worker_max_concurrent_activities,
            interceptors=[SpreadChunks()],
            **_activity_options(settings),
        )


@contextmanager
def _no_gc_finalizers() -> Iterator[None]:
    """Worker() loads every workflow module in the sandbox. On Python < 3.12 a garbage
    collection inside such a load can run a finalizer that imports (a never-awaited
    coroutine's warning, e.g. of an evicted run) and re-enter CPython's per-module import
    lock: `KeyError: <thread id>`, "Failed validating workflow" (temporalio/sdk-python
    #585, #1833). No collection, no finalizer in that window."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class SpreadChunks(Interceptor):
    """process-batch goes through the task queue, never eagerly. Eager execution hands an
    activity a workflow schedules straight back to the worker running that workflow, so
    every chunk of one import ran on the one worker holding its workflow whatever the
    number of workers (bench twoworker: 29 of 30 on one of two; 16/14 without it). The
    short steps in a row (claim-import, finalize...) stay eager: the round
    trip it saves is a small import's latency (bench small: ~100-250 ms an import here)."""

    THROUGH_QUEUE = frozenset(
        {activity._Definition.must_from_callable(ImportActivities.process_batch).name}
    )

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _SpreadChunksInbound


class _SpreadChunksInbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_SpreadChunksOutbound(outbound))


class _SpreadChunksOutbound(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> ActivityHandle[Any]:
        # Only the eager request changes: the command, and so replay, is the same.
        if input.activity in SpreadChunks.THROUGH_QUEUE:
            input.disable_eager_execution = True
        return super().start_activity(input)


def _activity_options(settings: Settings) -> dict[str, Any]:
    return {
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        # Heartbeats carry cancellations back: an import that fails or is cancelled waits
        # for its chunks to stop (WAIT_CANCELLATION_COMPLETED), so tell them within seconds.
        "max_heartbeat_throttle_interval": timedelta(seconds=2),
        "default_heartbeat_throttle_interval": timedelta(seconds=2),
        # Both workers of a release are one Worker Deployment version (None: unversioned).
        "deployment_config": deployment_config(settings),
    }


def build_chunk_workers(
    client: Client, services: Services, *, task_queue: str | None = None
) -> list[Worker]:
    """download-and-chunk on its own queues and slots, beside `build_worker`'s (none when
    imports are off). process-batch attempts wait in their slots for the chunks it writes,
    while it never waits for them: with one shared pool, waiters could hold every slot and
    the chunking they wait for could never start (tests/test_slots.py). Files of a few
    chunks have a queue of their own (models.chunking_task_queue)."""
    settings = services.settings
    if not settings.job_import_enabled:
        return []
    chunking = _import_activities(services).download_and_chunk
    return [
        Worker(
            client,
            task_queue=chunking_task_queue(task_queue or settings.temporal_task_queue, small),
            activities=[chunking],
            max_concurrent_activities=settings.worker_max_concurrent_chunkers,
            **_activity_options(settings),
        )
        for small in (False, True)
    ]


def build_avatars_worker(
    client: Client, services: Services, *, task_queue: str | None = None
) -> Worker | None:
    """lookup-avatars on its own queue (None when imports are off). Each activity asks
    Gravatar at most GRAVATAR_BATCH times, and the server hands the queue's activities
    out at most RATE / BATCH times a second to all its workers together: the rate holds
    however many workers run. Every worker sets the same value (the last poller's wins)."""
    settings = services.settings
    if not settings.job_import_enabled:
        return None
    return Worker(
        client,
        task_queue=avatars_task_queue(task_queue or settings.temporal_task_queue),
        activities=[_avatar_activities(services).lookup_avatars],
        max_concurrent_activities=settings.gravatar_lanes * 2,
        max_task_queue_activities_per_second=(
            settings.gravatar_rate_per_second / settings.gravatar_batch
        ),
        **_activity_options(settings),
    )


@asynccontextmanager
async def running_workers(
    client: Client, services: Services, *, task_queue: str | None = None
) -> AsyncIterator[Worker]:
    """The worker, its chunking worker and its avatars worker, running until the block exits."""
    async with AsyncExitStack() as stack:
        worker = await stack.enter_async_context(
            build_worker(client, services, task_queue=task_queue)
        )
        avatars = build_avatars_worker(client, services, task_queue=task_queue)
        for extra in [
            *build_chunk_workers(client, services, task_queue=task_queue),
            *([avatars] if avatars is not None else []),
        ]:
            await stack.enter_async_context(extra)
        yield worker


def tune_gc() -> None:
    """Imports allocate and drop millions of small objects (cells, rows, models). With the
    default thresholds the cyclic collector keeps rescanning everything the process holds,
    which measured at ~45 % of validation time; long-lived objects are frozen out of its
    reach and young collections run less often. Reference counting still frees rows."""
    gc.collect()
    gc.freeze()
    # A full collection still runs every ~20M allocations (a few per million rows), so
    # cyclic garbage cannot pile up in proportion to the file.
    gc.set_threshold(100_000, 20, 10)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    runtime = build_runtime(settings)
    client = await connect(settings, runtime=runtime)
    if runtime is not None:
        log.info("Prometheus metrics on http://%s/metrics", settings.metrics_bind)
    queue = settings.temporal_task_queue
    # Ready means every queue this process serves is polled: an import's avatars wait on
    # the avatars queue's poller as its chunks wait on the chunking ones.
    extra = (
        [*(chunking_task_queue(queue, small) for small in (False, True)), avatars_task_queue(queue)]
        if settings.job_import_enabled
        else []
    )
    health = WorkerHealth(client, polled_queues(queue, *extra), client.identity)
    # The probes outlive the workers: the pod stays live while in-flight activities drain.
    async with (
        open_services(settings) as services,
        serving_health(health, settings.worker_health_bind),
        running_workers(client, services),
    ):
        tune_gc()
        log.info("worker running against %s", settings.temporal_address)
        await stop.wait()
        health.stop()
        log.info(
            "stopping: in-flight activities get %ss", settings.worker_graceful_shutdown_seconds
        )


async def serve(settings: Settings) -> None:
    """The worker as a process: its logging, until SIGTERM or SIGINT."""
    setup_logging(settings.log_level, settings.log_format)
    logsafe.install(settings=settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)


def main() -> None:
    settings = get_settings()
    # Before any thread exists: arenas are created per thread on first use.
    limit_arenas(settings.worker_malloc_arenas)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
