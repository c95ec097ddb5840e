"""The worker's own probes, on WORKER_HEALTH_BIND: `/livez` and `/readyz`.

Ready means the Temporal server has seen this process poll every task queue it serves:
DescribeTaskQueue lists a poller with this worker's identity for each (queue, task type)
pair. That is the server's own account of who can be handed a task, so it says what a
rollout needs to know ("this pod can take work") and nothing less: the worker object
existing, the client connecting or the Prometheus endpoint answering all come earlier
(the metrics endpoint is up before the first poll, and stays up while polls fail). Once
seen, the worker stays ready until its shutdown begins: readiness only gates a rolling
update (no Service sends traffic to workers), and a worker that loses Temporal for a while
is the server's to wait for, not a reason to restart or replace the pod.

Live means the worker's event loop answers: both routes are served by that loop, so a
loop stuck in CPU work or a blocking call misses the probe's timeout. The Prometheus
endpoint cannot tell that, since the SDK's Rust runtime serves it from its own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from aiohttp import web
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError

log = logging.getLogger("folksjobs.health")

# How often the server is asked until the worker is seen: a pod is ready within this much
# of its first poll, and a starting fleet asks at most this often per worker.
CHECK_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class PolledQueue:
    name: str
    kind: TaskQueueType.ValueType

    def __str__(self) -> str:
        kind = "workflow" if self.kind == TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW else "activity"
        return f"{self.name} ({kind})"


def polled_queues(task_queue: str, *activity_queues: str | None) -> list[PolledQueue]:
    """What a folksjobs worker process polls: workflows and activities on its queue (the
    import gate is registered whatever the flags), activities on the extra queues (the
    chunking and avatars ones)."""
    wf, act = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
    queues = [PolledQueue(task_queue, wf), PolledQueue(task_queue, act)]
    queues += [PolledQueue(q, act) for q in activity_queues if q]
    return queues


class WorkerHealth:
    """Readiness from the server's pollers; `watch()` runs until the worker is seen."""

    def __init__(self, client: Client, queues: Sequence[PolledQueue], identity: str) -> None:
        self.client = client
        self.queues = list(queues)
        self.identity = identity
        self.ready = False
        self.stopping = False
        self.waiting_for: list[str] = [str(q) for q in self.queues]

    async def _seen(self, queue: PolledQueue) -> bool:
        resp = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=queue.name),
                task_queue_type=queue.kind,
            )
        )
        return any(p.identity == self.identity for p in resp.pollers)

    async def check(self) -> bool:
        """Ask the server once; True when every queue lists this worker's identity."""
        try:
            seen = await asyncio.gather(*(self._seen(q) for q in self.queues))
        except RPCError as e:
            log.info("readiness: cannot describe the task queues yet: %s", e)
            return False
        self.waiting_for = [str(q) for q, ok in zip(self.queues, seen, strict=True) if not ok]
        return not self.waiting_for

    async def watch(self) -> None:
        # Polling the server is the point here; there is no event to wait on.
        while not await self.check():  # noqa: ASYNC110
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)
        if not self.stopping:
            self.ready = True
            log.info("ready: the server sees %s polling %d task queues", self.identity,
                     len(self.queues))  # fmt: skip

    def stop(self) -> None:
        """Shutdown began: not ready any more (the process stays live while it drains)."""
        self.stopping = True
        self.ready = False

    # --- HTTP ---------------------------------------------------------------------------

    async def livez(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        if self.ready:
            return web.json_response({"status": "ready", "identity": self.identity})
        detail = "stopping" if self.stopping else "not polling yet: " + ", ".join(self.waiting_for)
        return web.json_response({"error": "not_ready", "detail": detail}, status=503)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        return app


@contextlib.asynccontextmanager
async def serving_health(health: WorkerHealth, bind: str | None) -> AsyncIterator[web.AppRunner]:
    """The probes on `bind` (host:port; port 0: any free port; None: no HTTP, the watch
    still runs and logs readiness), and the watch, until the block ends."""
    runner = web.AppRunner(health.app(), access_log=None)
    await runner.setup()
    if bind:
        host, _, port = bind.rpartition(":")
        await web.TCPSite(runner, host.strip("[]") or "127.0.0.1", int(port)).start()
    watch = asyncio.create_task(health.watch(), name="worker-readiness")
    try:
        yield runner
    finally:
        health.stop()
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await runner.cleanup()
