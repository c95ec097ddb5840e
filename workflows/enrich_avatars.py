"""enrich-avatars: the Gravatar lookups of one import, after its contacts are committed.

Not a step of the spec's process-csv, on purpose: the spec looks avatars up inside
process-batch, before the upsert, and that bounds an import at about 10 / latency rows a
second (issue 25: 20k rows took 250 s at 120 ms). Here the import commits its contacts
without waiting, marks each one as owed a lookup, and starts this job (workflow id
`avatars-<import_id>`), which fills the avatars in shortly after.

| step           | what it does                                                     |
|----------------|------------------------------------------------------------------|
| (rows-committed| a signal from the import once all its rows are committed (or it  |
|  signal)       | failed): lookups never compete with the import's own upserts     |
| avatars-owed   | how many lookups the import owes, whether it still commits rows, |
|                | the worker's settings for the pass (local activity)              |
| lookup-avatars | per lane, along the owed contacts in id order: cached answers    |
|                | written, up to `batch` addresses asked of Gravatar, answers      |
|                | written only to contacts that still owe them (xN, on the avatars |
|                | task queue: its dispatch rate is the cluster's Gravatar rate)    |
| drop-avatars   | on cancel: the import owes nothing any more                      |

The job is started with the import (so it can be followed and cancelled from the start)
but looks nothing up until the import says its rows are committed: an import competes
for the worker's event loop and PostgreSQL with nobody, and its avatars start seconds
later, a small share of the time the rate gives them. Passes repeat until the import is
no longer processing and owes nothing. Gravatar down,
slow or answering 429 makes lookup-avatars return a wait: the job sleeps and resumes, it
never fails. A worker lost mid-lookup loses nothing: the contacts stay owed and the
activity's retry (or the next pass) reads them again. History stays small: after
GRAVATAR_LOOKUPS_PER_RUN lookups the job continues as new with its counts.

Why one job per import, not one per workspace fed by signals: its lifetime is the import's
(cancel the import, cancel it), its progress is the import's, and its input is two ids;
the work itself is in the database (owed contacts), so nothing needs feeding. The rate is
not the job's but the task queue's, so any number of these jobs share it.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.avatars import AvatarActivities
    from folksjobs.models import (
        WF_ENRICH_AVATARS,
        AvatarBatch,
        AvatarPlan,
        AvatarProgress,
        AvatarsOf,
        EnrichAvatarsInput,
        avatars_task_queue,
    )

# Enrichment never gives up: a database or Redis outage is waited out, as Gravatar's is.
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
# A pass that wrote nothing (every address being asked by another job, or no answers)
# waits at least this long before the next one.
IDLE_SECONDS = 1.0
# The import's word that every row it will commit is committed (ProcessCsv sends it
# before finalize, and on failure).
ROWS_COMMITTED_SIGNAL = "rows-committed"


@workflow.defn(name=WF_ENRICH_AVATARS)
class EnrichAvatars:
    def __init__(self) -> None:
        self.import_id = ""
        self.stage = "starting"
        self.done = 0
        self.asked = 0
        self.pending = 0
        self.lookups = 0
        self.committed = False

    @workflow.signal(name=ROWS_COMMITTED_SIGNAL)
    def rows_committed(self) -> None:
        self.committed = True

    @workflow.query(name="progress")
    def progress(self) -> AvatarProgress:
        return AvatarProgress(
            import_id=self.import_id,
            stage=self.stage,
            done=self.done,
            pending=self.pending,
            asked=self.asked,
        )

    def _show_progress(self) -> None:
        workflow.set_current_details(
            f"{self.stage} · avatars {self.done:,} done · {self.pending:,} pending · "
            f"{self.asked:,} asked of Gravatar"
        )

    @workflow.run
    async def run(self, inp: EnrichAvatarsInput) -> AvatarProgress:
        self.import_id = inp.import_id
        self.done, self.asked = inp.done, inp.asked
        self.committed = self.committed or inp.committed
        of = AvatarsOf(import_id=inp.import_id, workspace_id=inp.workspace_id)
        try:
            while True:
                plan = await self._owed(of)
                if plan.pending == 0 and not plan.import_open:
                    break
                if plan.import_open and not self.committed:
                    # The import's word, or (a run that never sends it) its status.
                    self.stage = "waiting for the import's rows"
                    self._show_progress()
                    with contextlib.suppress(TimeoutError):  # then look at its status
                        await workflow.wait_condition(
                            lambda: self.committed, timeout=timedelta(seconds=plan.poll_seconds)
                        )
                    continue
                if plan.pending == 0:
                    await workflow.sleep(plan.poll_seconds)
                    continue
                self.stage = "lookup-avatars"
                self._show_progress()
                wrote = await self._pass(inp, plan)
                if self.lookups >= plan.lookups_per_run:
                    await workflow.wait_condition(workflow.all_handlers_finished)
                    workflow.continue_as_new(
                        inp.model_copy(
                            update={"done": self.done, "asked": self.asked, "committed": True}
                        )
                    )
                if not wrote:
                    await workflow.sleep(max(IDLE_SECONDS, plan.poll_seconds / 2))
        except (asyncio.CancelledError, ActivityError) as e:
            if not isinstance(e, asyncio.CancelledError) and not is_cancelled_exception(e):
                raise
            self.stage = "cancelled"
            self._show_progress()
            await workflow.execute_activity_method(
                AvatarActivities.drop_avatars,
                of,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=RETRY,
            )
            raise
        self.pending = 0
        self.stage = "completed"
        self._show_progress()
        return self.progress()

    async def _owed(self, of: AvatarsOf) -> AvatarPlan:
        plan = await workflow.execute_local_activity_method(
            AvatarActivities.avatars_owed,
            of,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY,
        )
        self.pending = plan.pending
        return plan

    async def _pass(self, inp: EnrichAvatarsInput, plan: AvatarPlan) -> int:
        """Every lane once along the contacts owed; returns the avatars written."""
        written = await asyncio.gather(*(self._lane(inp, plan, k) for k in range(plan.lanes)))
        return sum(written)

    async def _lane(self, inp: EnrichAvatarsInput, plan: AvatarPlan, lane: int) -> int:
        after, wrote = 0, 0
        queue = avatars_task_queue(workflow.info().task_queue)
        while self.lookups < plan.lookups_per_run:
            self.lookups += 1
            r = await workflow.execute_activity_method(
                AvatarActivities.lookup_avatars,
                AvatarBatch(
                    import_id=inp.import_id,
                    workspace_id=inp.workspace_id,
                    lane=lane,
                    lanes=plan.lanes,
                    after_id=after,
                    batch=plan.batch,
                ),
                task_queue=queue,
                start_to_close_timeout=timedelta(seconds=plan.lookup_timeout_seconds),
                retry_policy=RETRY,
                summary=f"lane {lane + 1} of {plan.lanes} after contact {after}",
            )
            wrote += r.done
            self.done += r.done
            self.asked += r.asked
            self.pending = max(0, self.pending - r.done)
            self._show_progress()
            if r.retry_after:
                self.stage = "waiting for Gravatar"
                self._show_progress()
                await workflow.sleep(r.retry_after)
                self.stage = "lookup-avatars"
            if r.next_after is None:
                break
            after = r.next_after
        return wrote
