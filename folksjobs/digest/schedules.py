"""The `weekly-digest` Temporal Schedule: apply (create or update), trigger, pause,
backfill, describe. The hourly `discard-stale-uploads` and `expire-files` Schedules are
applied the same way (`DigestSchedule.stale_uploads`, `DigestSchedule.expire_files`).

Applying is idempotent: the wanted schedule is compared with the one the server has and
updated only when they differ, so applying twice changes nothing (not even its
last-updated time). The cron setting is turned into a calendar spec here because that
is the form the server stores (it converts cron strings itself), which makes the two
comparable field by field.

Catch-up window (DIGEST_CATCHUP_WINDOW_SECONDS, default 1 day): a Monday run missed while
Temporal was down starts once when it is back within the day; a week missed for longer
is not sent days late by surprise but with `schedule backfill`. A worker outage needs no
catch-up: the run is started and waits on its task queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from folksjobs.models import (
    DIGEST_SCHEDULE_WORKFLOW_ID,
    DISCARD_UPLOADS_WORKFLOW_ID,
    EXPIRE_FILES_WORKFLOW_ID,
    WF_DISCARD_STALE_UPLOADS,
    WF_EXPIRE_FILES,
    WF_WEEKLY_DIGEST,
    DiscardStaleUploadsInput,
    ExpireFilesInput,
    Model,
    WeeklyDigestInput,
)
from folksjobs.settings import Settings

# --- cron -> calendar ---------------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
        start=1,
    )
}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])}
# (name, lowest, highest, names)
_FIELDS = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day_of_month", 1, 31, {}),
    ("month", 1, 12, _MONTHS),
    ("day_of_week", 0, 7, _DAYS),
]


class CronError(ValueError):
    pass


def _value(text: str, lo: int, hi: int, names: dict[str, int], field: str) -> int:
    v = names.get(text.upper())
    if v is None:
        if not text.isdigit():
            raise CronError(f"cron {field}: {text!r} is not a number")
        v = int(text)
    if not lo <= v <= hi:
        raise CronError(f"cron {field}: {v} is outside {lo}-{hi}")
    return v


def _ranges(
    text: str, field: str, lo: int, hi: int, names: dict[str, int]
) -> tuple[ScheduleRange, ...]:
    out: list[ScheduleRange] = []
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"cron {field}: bad step {step_text!r}")
            step = int(step_text)
        if base in ("*", "?"):
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, lo, hi, names, field), _value(b, lo, hi, names, field)
            if end < start:
                raise CronError(f"cron {field}: range {base!r} runs backwards")
        else:
            start = _value(base, lo, hi, names, field)
            end = hi if step_text else start
        if field == "day_of_week":
            if start == end == 7:
                start = end = 0  # 7 is Sunday too
            elif base in ("*", "?"):
                end = 6
            elif end == 7:
                raise CronError("cron day_of_week: use 0 for Sunday in ranges")
        out.append(ScheduleRange(start, end, step))
    return tuple(out)


def cron_calendar(cron: str) -> ScheduleCalendarSpec:
    """A 5-field cron string (minute hour day-of-month month day-of-week) as a calendar."""
    parts = cron.split()
    if len(parts) != 5:
        raise CronError(f"cron {cron!r}: want 5 fields (minute hour day month weekday)")
    fields = {
        name: _ranges(part, name, lo, hi, names)
        for part, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True)
    }
    if parts[2] not in ("*", "?") and parts[4] not in ("*", "?"):
        # cron ORs the two day fields, a calendar ANDs them: refuse rather than misfire.
        raise CronError(f"cron {cron!r}: give a day of month or a day of week, not both")
    return ScheduleCalendarSpec(
        second=(ScheduleRange(0, 0, 1),),
        minute=fields["minute"],
        hour=fields["hour"],
        day_of_month=fields["day_of_month"],
        month=fields["month"],
        year=(),
        day_of_week=fields["day_of_week"],
    )


# --- the schedule ---------------------------------------------------------------------


@dataclass(frozen=True)
class DigestSchedule:
    """Which schedule, and what it should look like. Tests pass their own id and queue."""

    schedule_id: str
    cron: str
    task_queue: str
    workflow_id: str = DIGEST_SCHEDULE_WORKFLOW_ID
    time_zone: str = "UTC"
    catchup_window: timedelta = timedelta(days=1)
    workflow: str = WF_WEEKLY_DIGEST
    input: Model = field(default_factory=WeeklyDigestInput)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> DigestSchedule:
        values: dict[str, Any] = {
            "schedule_id": settings.digest_schedule_id,
            "cron": settings.digest_cron,
            "task_queue": settings.temporal_task_queue,
            "catchup_window": timedelta(seconds=settings.digest_catchup_window_seconds),
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def stale_uploads(cls, settings: Settings) -> DigestSchedule:
        """The hourly sweep of pending uploads nobody confirmed."""
        return cls(
            schedule_id=settings.discard_uploads_schedule_id,
            cron=settings.discard_uploads_cron,
            task_queue=settings.temporal_task_queue,
            workflow_id=DISCARD_UPLOADS_WORKFLOW_ID,
            # A missed hour is made up by the next one.
            catchup_window=timedelta(minutes=1),
            workflow=WF_DISCARD_STALE_UPLOADS,
            input=DiscardStaleUploadsInput(),
        )

    @classmethod
    def expire_files(cls, settings: Settings) -> DigestSchedule:
        """The hourly sweep of upload and export files past their retention time."""
        return cls(
            schedule_id=settings.expire_files_schedule_id,
            cron=settings.expire_files_cron,
            task_queue=settings.temporal_task_queue,
            workflow_id=EXPIRE_FILES_WORKFLOW_ID,
            # A missed hour is made up by the next one.
            catchup_window=timedelta(minutes=1),
            workflow=WF_EXPIRE_FILES,
            input=ExpireFilesInput(),
        )

    def spec(self) -> ScheduleSpec:
        return ScheduleSpec(calendars=[cron_calendar(self.cron)], time_zone_name=self.time_zone)

    def action(self) -> ScheduleActionStartWorkflow:
        # No scheduled_for: each run reads its own scheduled time from the search
        # attribute the Schedule sets, which is what makes backfills report the right week.
        return ScheduleActionStartWorkflow(
            self.workflow,
            self.input,
            id=self.workflow_id,
            task_queue=self.task_queue,
        )

    def policy(self) -> SchedulePolicy:
        return SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=self.catchup_window
        )


ApplyOutcome = Literal["created", "updated", "unchanged"]


def _spec_key(spec: ScheduleSpec) -> tuple[Any, ...]:
    return (
        tuple(spec.calendars),
        tuple(spec.intervals),
        tuple(spec.cron_expressions),
        tuple(spec.skip),
        spec.start_at,
        spec.end_at,
        spec.jitter or timedelta(0),
        spec.time_zone_name or "UTC",
    )


async def _differences(client: Client, want: DigestSchedule, have: Schedule) -> list[str]:
    diffs: list[str] = []
    if _spec_key(want.spec()) != _spec_key(have.spec):
        diffs.append("spec")
    action = have.action
    if not isinstance(action, ScheduleActionStartWorkflow):
        return [*diffs, "action"]
    wanted_args = await client.data_converter.encode([want.input])
    if (action.workflow, action.id, action.task_queue) != (
        want.workflow,
        want.workflow_id,
        want.task_queue,
    ) or list(action.args) != list(wanted_args):
        diffs.append("action")
    policy = want.policy()
    if (have.policy.overlap, have.policy.catchup_window, have.policy.pause_on_failure) != (
        policy.overlap,
        policy.catchup_window,
        policy.pause_on_failure,
    ):
        diffs.append("policy")
    return diffs


async def apply_schedule(client: Client, want: DigestSchedule) -> tuple[ApplyOutcome, list[str]]:
    """Create the schedule, or update it where it differs; returns what changed."""
    spec = want.spec()  # a bad cron fails here, before anything is sent
    handle = client.get_schedule_handle(want.schedule_id)
    try:
        desc = await handle.describe()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        await client.create_schedule(
            want.schedule_id,
            Schedule(
                action=want.action(),
                spec=spec,
                policy=want.policy(),
                state=ScheduleState(
                    note="managed by folksjobs: `python -m starter schedule apply`"
                ),
            ),
        )
        return "created", []
    diffs = await _differences(client, want, desc.schedule)
    if not diffs:
        return "unchanged", []

    def update(inp: ScheduleUpdateInput) -> ScheduleUpdate:
        # Pausing is an operator's decision: an apply keeps the state it finds.
        return ScheduleUpdate(
            Schedule(
                action=want.action(),
                spec=spec,
                policy=want.policy(),
                state=inp.description.schedule.state,
            )
        )

    await handle.update(update)
    return "updated", diffs


async def ensure_digest_schedule(settings: Settings, client: Client) -> None:
    """The dev stack's start hook: the schedule exists when the digest job is enabled."""
    if settings.job_digest_enabled:
        await apply_schedule(client, DigestSchedule.from_settings(settings))
    else:
        await hold_disabled_schedule(client, settings.digest_schedule_id)


async def ensure_discard_uploads_schedule(settings: Settings, client: Client) -> None:
    """The dev stack's start hook for the stale-upload sweep, like the digest's."""
    sid = settings.discard_uploads_schedule_id
    if settings.job_discard_uploads_enabled:
        await apply_schedule(client, DigestSchedule.stale_uploads(settings))
    else:
        await hold_disabled_schedule(client, sid, "JOB_DISCARD_UPLOADS_ENABLED")


async def ensure_expire_files_schedule(settings: Settings, client: Client) -> None:
    """The dev stack's start hook for the retention sweep, like the digest's."""
    if settings.job_expire_files_enabled:
        await apply_schedule(client, DigestSchedule.expire_files(settings))
    else:
        await hold_disabled_schedule(
            client, settings.expire_files_schedule_id, "JOB_EXPIRE_FILES_ENABLED"
        )


async def hold_disabled_schedule(
    client: Client, schedule_id: str, flag: str = "JOB_DIGEST_ENABLED"
) -> Literal["absent", "paused"]:
    """With JOB_DIGEST_ENABLED=false: create nothing, and pause a schedule left from
    before, whose runs no worker would pick up (spec 004: a disabled job's cron is inert)."""
    handle = client.get_schedule_handle(schedule_id)
    try:
        desc = await handle.describe()
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
        return "absent"
    if not desc.schedule.state.paused:
        await handle.pause(note=f"its job is switched off ({flag}=false)")
    return "paused"


async def trigger(client: Client, schedule_id: str) -> None:
    await client.get_schedule_handle(schedule_id).trigger()


async def set_paused(client: Client, schedule_id: str, paused: bool, note: str) -> None:
    handle = client.get_schedule_handle(schedule_id)
    if paused:
        await handle.pause(note=note)
    else:
        await handle.unpause(note=note)


def backfill_range(first: date, last: date, *, today: date) -> tuple[datetime, datetime]:
    """The instants covering whole days `first`..`last` (UTC), both included."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    if last >= today:
        raise ValueError(f"--to {last} is not in the past: backfill runs weeks already over")
    start = datetime.combine(first, time.min, tzinfo=UTC)
    end = datetime.combine(last, time.max, tzinfo=UTC)
    return start, end


async def backfill(
    client: Client, schedule_id: str, first: date, last: date, *, today: date | None = None
) -> tuple[datetime, datetime]:
    start, end = backfill_range(first, last, today=today or datetime.now(UTC).date())
    # Buffered one after another rather than SKIP: every missed week runs, none at once.
    await client.get_schedule_handle(schedule_id).backfill(
        ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.BUFFER_ALL)
    )
    return start, end


def _ranges_text(ranges: Sequence[ScheduleRange], lo: int, hi: int) -> str:
    parts = []
    for r in ranges:
        if (r.start, r.end) == (lo, hi):
            text = "*"
        else:
            text = str(r.start) if r.start == r.end else f"{r.start}-{r.end}"
        parts.append(text + (f"/{r.step}" if r.step > 1 else ""))
    return ",".join(parts) or "*"


def calendar_text(cal: ScheduleCalendarSpec) -> str:
    """The calendar the server stores, written back as cron: minute hour day month weekday."""
    fields = [
        (cal.minute, 0, 59),
        (cal.hour, 0, 23),
        (cal.day_of_month, 1, 31),
        (cal.month, 1, 12),
        (cal.day_of_week, 0, 6),
    ]
    return " ".join(_ranges_text(r, lo, hi) for r, lo, hi in fields)


def describe_dict(schedule_id: str, desc: ScheduleDescription) -> dict[str, Any]:
    s, info = desc.schedule, desc.info
    action = s.action
    return {
        "schedule_id": schedule_id,
        "paused": s.state.paused,
        "note": s.state.note,
        "calendars": [calendar_text(c) for c in s.spec.calendars],
        "time_zone": s.spec.time_zone_name or "UTC",
        "overlap": s.policy.overlap.name,
        "catchup_window_seconds": int((s.policy.catchup_window or timedelta(0)).total_seconds()),
        "workflow_type": getattr(action, "workflow", None),
        "workflow_id": getattr(action, "id", None),
        "task_queue": getattr(action, "task_queue", None),
        "next_action_times": [t.isoformat() for t in info.next_action_times[:5]],
        "recent_actions": [
            {
                "scheduled_at": a.scheduled_at.isoformat(),
                "started_at": a.started_at.isoformat(),
                "workflow_id": getattr(a.action, "workflow_id", None),
            }
            for a in info.recent_actions
        ],
        "running": [getattr(a, "workflow_id", None) for a in info.running_actions],
        "num_actions": info.num_actions,
        "missed_catchup_window": info.num_actions_missed_catchup_window,
        "skipped_overlap": info.num_actions_skipped_overlap,
        "created_at": info.created_at.isoformat(),
        "last_updated_at": info.last_updated_at.isoformat() if info.last_updated_at else None,
    }


async def describe(client: Client, schedule_id: str, *, statuses: bool = False) -> dict[str, Any]:
    data = describe_dict(schedule_id, await client.get_schedule_handle(schedule_id).describe())
    if statuses:
        # The latest run of each recent action's continue-as-new chain.
        for action in data["recent_actions"]:
            try:
                run = await client.get_workflow_handle(action["workflow_id"]).describe()
                action["status"] = run.status.name if run.status else None
            except RPCError:
                action["status"] = None  # retention expired
    return data
