"""Commands: schedule (apply|trigger|pause|unpause|backfill|show) and digest (a manual run).

python -m starter schedule apply              # create or update `weekly-digest`
python -m starter schedule backfill --from 2026-11-01 --to 2026-11-20
python -m starter digest --for 2026-11-23T08:00:00Z --wait
"""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from starter.common import add_json_flag, emit, fail, ui_link

if TYPE_CHECKING:
    from folksjobs.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schedule", help="manage the weekly-digest Temporal Schedule")
    p.add_argument("--schedule-id", help="default: DIGEST_SCHEDULE_ID (weekly-digest); "
                   "DISCARD_UPLOADS_SCHEDULE_ID (discard-stale-uploads) for the hourly sweep "
                   "of unconfirmed uploads; EXPIRE_FILES_SCHEDULE_ID (expire-files) for the "
                   "hourly sweep of files past their retention time")  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in [
        ("apply", "create the schedule or update it to match the settings (idempotent)"),
        ("trigger", "start a run now (reports on the 7 days before now)"),
        ("pause", "pause the schedule"),
        ("unpause", "unpause the schedule"),
        ("show", "print the schedule's state, spec, next and recent runs"),
    ]:
        a = actions.add_parser(name, help=text)
        add_json_flag(a)
        if name in ("pause", "unpause"):
            a.add_argument("--note", default=f"{name}d with `python -m starter schedule`")
    a = actions.add_parser("backfill", help="run the weeks scheduled between two past dates")
    a.add_argument(
        "--from",
        dest="first",
        required=True,
        type=date.fromisoformat,
        help="first day (YYYY-MM-DD, UTC), included",
    )
    a.add_argument(
        "--to",
        dest="last",
        required=True,
        type=date.fromisoformat,
        help="last day (YYYY-MM-DD, UTC), included; before today",
    )
    add_json_flag(a)
    p.set_defaults(run=schedule_cmd)

    p = sub.add_parser("digest", help="run the weekly digest once, outside the schedule")
    p.add_argument(
        "--for",
        dest="scheduled_for",
        type=_aware_datetime,
        help="the time the run reports up to, e.g. 2026-11-23T08:00:00Z"
        " (default: now); its week names the run: digest-<week>",
    )
    p.add_argument("--wait", action="store_true", help="wait for the summary")
    add_json_flag(p)
    p.set_defaults(run=digest_cmd)


def _aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone (add Z or +00:00)")
    return value


async def schedule_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from temporalio.service import RPCError, RPCStatusCode

    from folksjobs.digest import schedules
    from starter.common import connect

    if args.schedule_id == settings.discard_uploads_schedule_id:
        want = schedules.DigestSchedule.stale_uploads(settings)
        job, flag = "discard-stale-uploads", "job_discard_uploads_enabled"
    elif args.schedule_id == settings.expire_files_schedule_id:
        want = schedules.DigestSchedule.expire_files(settings)
        job, flag = "expire-files", "job_expire_files_enabled"
    else:
        want = schedules.DigestSchedule.from_settings(settings)
        job, flag = "weekly-digest", "job_digest_enabled"
    sid = args.schedule_id or want.schedule_id
    client = await connect(settings)
    try:
        if args.action == "apply" and not getattr(settings, flag):
            state = await schedules.hold_disabled_schedule(client, sid, flag.upper())
            emit(
                args,
                {"schedule_id": sid, "outcome": "disabled", "schedule": state},
                f"schedule {sid}: not applied, job {job} is disabled "
                f"({flag.upper()}=false); schedule {state}",
            )
        elif args.action == "apply":
            try:
                outcome, diffs = await schedules.apply_schedule(
                    client, dataclasses.replace(want, schedule_id=sid)
                )
            except schedules.CronError as e:
                fail(f"DIGEST_CRON: {e}")
            detail = f" ({', '.join(diffs)})" if diffs else ""
            emit(
                args,
                {"schedule_id": sid, "outcome": outcome, "changed": diffs},
                f"schedule {sid}: {outcome}{detail}",
            )
        elif args.action == "trigger":
            await schedules.trigger(client, sid)
            emit(
                args,
                {"schedule_id": sid, "triggered": True},
                f"schedule {sid}: triggered (skipped if a run is still going: overlap SKIP)",
            )
        elif args.action in ("pause", "unpause"):
            await schedules.set_paused(client, sid, args.action == "pause", args.note)
            emit(
                args,
                {"schedule_id": sid, "paused": args.action == "pause"},
                f"schedule {sid}: {args.action}d",
            )
        elif args.action == "backfill":
            try:
                start, end = await schedules.backfill(client, sid, args.first, args.last)
            except ValueError as e:
                fail(str(e))
            emit(
                args,
                {"schedule_id": sid, "from": start, "to": end},
                f"schedule {sid}: backfilling the runs due {start:%Y-%m-%d %H:%M} .. "
                f"{end:%Y-%m-%d %H:%M} UTC, one after another",
            )
        else:
            data = await schedules.describe(client, sid, statuses=True)
            emit(args, data, _show_text(data))
    except RPCError as e:
        if e.status == RPCStatusCode.NOT_FOUND:
            fail(f"schedule {sid} does not exist: run `python -m starter schedule apply`")
        raise


def _show_text(d: dict[str, Any]) -> str:
    lines = [
        f"schedule     {d['schedule_id']}  ({'PAUSED' if d['paused'] else 'active'})",
        f"note         {d['note'] or '-'}",
        f"calendar     {'; '.join(d['calendars'])} ({d['time_zone']})"
        "   [minute hour day month weekday]",
        f"action       start {d['workflow_type']} id {d['workflow_id']}-<time>"
        f" on task queue {d['task_queue']}",
        f"policy       overlap {d['overlap']}, catch-up window"
        f" {timedelta(seconds=d['catchup_window_seconds'])}",
        f"actions      {d['num_actions']} taken, {d['skipped_overlap']} skipped (overlap),"
        f" {d['missed_catchup_window']} missed (catch-up window)",
        "next runs    " + ("\n             ".join(d["next_action_times"]) or "-"),
        "recent runs  "
        + (
            "\n             ".join(
                f"{a['scheduled_at']}  {a['workflow_id']}  {a['status'] or '?'}"
                for a in d["recent_actions"]
            )
            or "-"
        ),
    ]
    return "\n".join(lines)


async def digest_cmd(args: argparse.Namespace, settings: Settings) -> None:
    from temporalio.common import WorkflowIDConflictPolicy

    from folksjobs.catalog import JobDisabled, job_by_workflow, require_enabled
    from folksjobs.digest.stats import digest_week
    from folksjobs.models import (
        WF_WEEKLY_DIGEST,
        WeeklyDigestInput,
        WeeklyDigestResult,
        digest_workflow_id,
    )
    from starter.common import connect, result_reporting_waits
    from starter.errors import JOB_FAILED

    try:
        require_enabled(settings, job_by_workflow(WF_WEEKLY_DIGEST))
    except JobDisabled as e:
        fail(str(e))
    scheduled_for = args.scheduled_for or datetime.now(UTC)
    week = digest_week(scheduled_for)
    wid = digest_workflow_id(week.week_start)
    client = await connect(settings)
    handle = await client.start_workflow(
        WF_WEEKLY_DIGEST,
        WeeklyDigestInput(scheduled_for=scheduled_for),
        id=wid,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=WeeklyDigestResult,
    )
    data: dict[str, object] = {
        "workflow_id": wid,
        "run_id": handle.result_run_id,
        "ui": ui_link(settings, wid),
        "week_start": week.week_start,
        "window_start": week.window_start,
        "window_end": week.window_end,
    }
    text = (
        f"started {wid}: new contacts {week.window_start:%Y-%m-%d %H:%M} .. "
        f"{week.window_end:%Y-%m-%d %H:%M} UTC\n  {data['ui']}"
    )
    if not args.wait:
        emit(args, data, text)
        return
    result = WeeklyDigestResult.model_validate(await result_reporting_waits(client, wid))
    data["result"] = result.model_dump(mode="json")
    text += f"\n  {result.summary}, {result.runs} run(s)"
    if result.given_up_workspace_ids:
        text += (
            f"\n  given up (the provider still refused when the window closed):"
            f" {', '.join(result.given_up_workspace_ids)}"
        )
    emit(args, data, text)
    if result.summary.given_up:
        raise SystemExit(JOB_FAILED)
