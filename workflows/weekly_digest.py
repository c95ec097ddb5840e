"""weekly-digest (Schedule `weekly-digest`, cron `0 8 * * 1` UTC; retries 1 => at most 2
attempts per step).

| step             | what it does                                                      |
|------------------|-------------------------------------------------------------------|
| get-workspaces   | one page of active workspace ids (keyset by id, DIGEST_PAGE_SIZE) |
| digest-<ws id>   | activity `digest-workspace`, at most DIGEST_CONCURRENCY at once:  |
|                  | setting off => skip; owner by owner_user_id; four statistics;     |
|                  | nothing new => skip; claim (workspace, week), send, mark sent     |
| digest-batch-<i> | the same for EMAIL_BATCH_SIZE workspaces, one batch request       |
|                  | (activity `digest-batch`), when that setting is above 1           |
| continue-as-new  | after every page, carrying the cursor and the running totals, so  |
|                  | 100,000 workspaces are 200 short runs, not one endless history    |

A workspace's failure is logged and counted and never stops the others. A provider that
is down or busy delays a digest (activities/delivery.py) until shortly before the next
digest is due; one still refused then is counted as given up. The week comes from the
scheduled time (see `folksjobs.digest.stats`), never from the worker's clock.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.digest import DigestActivities
    from folksjobs import errors
    from folksjobs.catalog import job_by_workflow
    from folksjobs.digest.stats import digest_week
    from folksjobs.errors import INVALID_PAYLOAD
    from folksjobs.models import (
        DIGEST_FAILED_IDS_KEPT,
        DIGEST_WAITING_SIGNAL,
        WF_WEEKLY_DIGEST,
        DigestBatchJob,
        DigestCursor,
        DigestOutcome,
        DigestPageRequest,
        DigestSummary,
        DigestWaiting,
        DigestWeek,
        WeeklyDigestInput,
        WeeklyDigestResult,
        WorkspaceDigestJob,
        digest_send_key,
    )
    from folksjobs.notify.retry import EMAIL_DELIVERY, EMAIL_RETRY

# Set by the Schedule on every run it starts (also for trigger and backfill): the
# nominal time of that action, which is what a backfilled run must report on.
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

RETRY = RetryPolicy(
    maximum_attempts=job_by_workflow(WF_WEEKLY_DIGEST).attempts,
    initial_interval=timedelta(seconds=2),
    non_retryable_error_types=[
        errors.OWNER_NOT_FOUND,
        errors.WORKSPACE_NOT_FOUND,
        errors.EMAIL_PERMANENT_FAILURE,
    ],
)


def _scheduled_for(inp: WeeklyDigestInput) -> datetime:
    if inp.scheduled_for is not None:
        return inp.scheduled_for
    scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START_TIME)
    if scheduled is not None:
        return scheduled
    # Last resort, a manual start with neither (`temporal workflow start --input '{}'`):
    # the workflow's own time, recorded in history, so replays agree.
    return workflow.now()


@workflow.defn(name=WF_WEEKLY_DIGEST)
class WeeklyDigest:
    def __init__(self) -> None:
        self._week: DigestWeek | None = None
        self._totals = DigestSummary()
        self._failed: list[str] = []
        self._given_up: list[str] = []
        self._runs = 1
        self._in_flight: set[str] = set()
        self._waiting: set[str] = set()
        self._delivery = False

    @workflow.query
    def progress(self) -> WeeklyDigestResult | None:
        return self._result() if self._week else None

    def _result(self) -> WeeklyDigestResult:
        assert self._week is not None
        return WeeklyDigestResult(
            week=self._week,
            summary=self._totals,
            runs=self._runs,
            failed_workspace_ids=self._failed,
            waiting=len(self._waiting),
            given_up_workspace_ids=self._given_up,
        )

    @workflow.signal(name=DIGEST_WAITING_SIGNAL)
    def digest_waiting(self, w: DigestWaiting) -> None:
        # Only digests still in flight: a late signal must not count a finished one.
        self._waiting.update(ws for ws in w.workspace_ids if ws in self._in_flight)
        self._show()

    def _show(self) -> None:
        """The run's counts in the Temporal UI (workflow details). Emails a provider
        made wait are the pending digest activities listed beside them."""
        t = self._totals
        workflow.set_current_details(
            f"sent {t.sent + t.already_sent:,}, waiting {len(self._waiting):,},"
            f" sending {len(self._in_flight) - len(self._waiting):,},"
            f" given up {t.given_up:,}, failed {t.failed:,},"
            f" skipped {t.skipped_disabled + t.skipped_no_activity:,}"
        )

    @workflow.run
    async def run(self, inp: WeeklyDigestInput) -> WeeklyDigestResult:
        if inp.resume is not None and workflow.info().continued_run_id is None:
            # Only this workflow's own continue-as-new carries a cursor (the server sets
            # continued_run_id): one from a caller would skip or repeat workspaces.
            raise ApplicationError(
                "invalid WeeklyDigestInput: resume: internal state, not accepted from callers",
                type=INVALID_PAYLOAD,
                non_retryable=True,
            )
        scheduled_for = _scheduled_for(inp)
        if scheduled_for.tzinfo is None:
            raise ApplicationError(
                f"scheduled_for {scheduled_for.isoformat()} has no time zone;"
                " give one, e.g. 2026-11-23T08:00:00Z",
                type=errors.INVALID_DIGEST_INPUT,
                non_retryable=True,
            )
        self._week = week = digest_week(scheduled_for)
        self._delivery = workflow.patched(EMAIL_DELIVERY)
        after: str | None = None
        if inp.resume is not None:
            after = inp.resume.after_workspace_id
            self._totals = inp.resume.totals
            self._failed = inp.resume.failed_workspace_ids
            self._given_up = inp.resume.given_up_workspace_ids
            self._runs = inp.resume.runs + 1

        page = await workflow.execute_activity_method(
            DigestActivities.get_workspaces,
            DigestPageRequest(after_workspace_id=after),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RETRY,
        )
        window = asyncio.Semaphore(page.concurrency)
        batch = page.batch_size if self._delivery else 1
        ids = page.workspace_ids
        if batch > 1:
            slices = [ids[i : i + batch] for i in range(0, len(ids), batch)]
            await asyncio.gather(*(self._digest_batch(s, week, window) for s in slices))
        else:
            await asyncio.gather(*(self._digest_one(ws, week, window) for ws in ids))
        self._show()

        if page.next_after is not None:
            await workflow.wait_condition(workflow.all_handlers_finished)
            workflow.continue_as_new(
                WeeklyDigestInput(
                    scheduled_for=scheduled_for,
                    resume=DigestCursor(
                        after_workspace_id=page.next_after,
                        runs=self._runs,
                        totals=self._totals,
                        failed_workspace_ids=self._failed,
                        given_up_workspace_ids=self._given_up,
                    ),
                )
            )
        workflow.logger.info("weekly digest for %s done: %s", week.week_start, self._totals)
        return self._result()

    def _count(self, workspace_id: str, outcome: DigestOutcome) -> None:
        self._in_flight.discard(workspace_id)
        self._waiting.discard(workspace_id)
        self._totals.count(outcome)
        kept = {"failed": self._failed, "given_up": self._given_up}.get(outcome)
        if kept is not None and len(kept) < DIGEST_FAILED_IDS_KEPT:
            kept.append(workspace_id)
        self._show()

    async def _digest_one(
        self, workspace_id: str, week: DigestWeek, window: asyncio.Semaphore
    ) -> None:
        async with window:
            self._in_flight.add(workspace_id)
            try:
                result = await workflow.execute_activity_method(
                    DigestActivities.digest_workspace,
                    WorkspaceDigestJob(
                        workspace_id=workspace_id,
                        week=week,
                        idempotency_key=digest_send_key(workspace_id, week.week_start),
                    ),
                    # The spec's step name, so the UI lists one `digest-<id>` per workspace.
                    activity_id=f"digest-{workspace_id}",
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=EMAIL_RETRY if self._delivery else RETRY,
                )
                outcome: DigestOutcome = result.outcome
            except ActivityError as e:
                if isinstance(e.cause, CancelledError):
                    raise
                outcome = "failed"
                if self._delivery and errors.failed_with(e, errors.EMAIL_GIVEN_UP):
                    outcome = "given_up"
                workflow.logger.warning(
                    "digest for workspace %s %s, continuing with the others: %s",
                    workspace_id,
                    outcome.replace("_", " "),
                    e.cause or e,
                )
        self._count(workspace_id, outcome)

    async def _digest_batch(
        self, workspace_ids: list[str], week: DigestWeek, window: asyncio.Semaphore
    ) -> None:
        async with window:
            self._in_flight.update(workspace_ids)
            try:
                result = await workflow.execute_activity_method(
                    DigestActivities.digest_batch,
                    DigestBatchJob(workspace_ids=workspace_ids, week=week),
                    activity_id=f"digest-batch-{workspace_ids[0]}",
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=EMAIL_RETRY,
                )
                outcomes = {r.workspace_id: r.outcome for r in result.results}
            except ActivityError as e:
                if isinstance(e.cause, CancelledError):
                    raise
                # The batch's own failure (the database, past its attempts): each of its
                # workspaces failed; refusals and closed windows come back per workspace.
                workflow.logger.warning("digest batch failed: %s", e.cause or e)
                outcomes = dict.fromkeys(workspace_ids, "failed")
        for ws in workspace_ids:
            self._count(ws, outcomes[ws])
