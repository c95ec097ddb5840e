"""The typed event catalog and `dispatch()` (spec 003): one way in for every job start.

An event is a name plus camelCase data (spec 001 "Event Data Convention": every event
carries userId, and workspaceId when it belongs to a workspace). `dispatch` maps it to
its workflow type, task queue and deterministic workflow id, and starts it:

- id_conflict_policy USE_EXISTING: while the run for that id is open, a repeated event
  returns the open run and starts nothing.
- id_reuse_policy ALLOW_DUPLICATE_FAILED_ONLY (ID_REUSE_POLICY): once that run has
  completed, the id is never used again, so a replayed event cannot import or email
  twice; `dispatch` then returns the closed run (`started=False`). A run that failed,
  was cancelled or terminated does not hold the id: a run someone started with a wrong
  workspace, or one refused because the record was not ready, is followed by a fresh run
  when the rightful event comes (the job's first step refuses a record already ended).
- With a database pool, `dispatch` first checks what the event names (`check_event`):
  the workspace exists, the user belongs to it, the import or export is the workspace's.
- The job's flag off (spec 004): `JobDisabled`, and nothing starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from folksjobs import models
from folksjobs.catalog import JobDisabled, JobSpec, job_by_workflow, require_enabled
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import repo as imports_repo
from folksjobs.infra import ui
from folksjobs.models import Model
from folksjobs.settings import Settings
from folksjobs.tenancy import NotAMember, require_member

ID_CONFLICT_POLICY = WorkflowIDConflictPolicy.USE_EXISTING
ID_REUSE_POLICY = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY


class EventError(ValueError):
    """An unknown event name or data that does not match the event's schema."""


class EventData(BaseModel):
    """Event payloads: camelCase on the wire (aliases), snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True
    )
    NAME: ClassVar[str]


class ImportCsvConfirmed(EventData):
    """A user confirmed a CSV upload; the import record exists with status pending."""

    NAME = "import/csv.confirmed"
    import_id: UUID
    workspace_id: UUID
    user_id: UUID


class ExportCsvConfirmed(EventData):
    """A user asked for a CSV export; the export record exists (with its tag filter)."""

    NAME = "export/csv.confirmed"
    export_id: UUID
    workspace_id: UUID
    user_id: UUID


class UserSignedUp(EventData):
    """A user confirmed their email address (no workspace yet)."""

    NAME = "user/signed.up"
    user_id: UUID


@dataclass(frozen=True)
class Route:
    """How one event becomes one workflow start."""

    data: type[EventData]
    workflow: str
    workflow_id: Callable[[Any], str]
    input: Callable[[Any], Model]
    search_attributes: Callable[[Any], TypedSearchAttributes]
    summary: Callable[[Any], str]

    @property
    def name(self) -> str:
        return self.data.NAME

    @property
    def job(self) -> JobSpec:
        return job_by_workflow(self.workflow)


def _import(e: ImportCsvConfirmed) -> models.ProcessCsvInput:
    return models.ProcessCsvInput(
        import_id=str(e.import_id), workspace_id=str(e.workspace_id), user_id=str(e.user_id)
    )


def _export(e: ExportCsvConfirmed) -> models.ProcessExportInput:
    return models.ProcessExportInput(
        export_id=str(e.export_id), workspace_id=str(e.workspace_id), user_id=str(e.user_id)
    )


ROUTES: dict[str, Route] = {
    r.name: r
    for r in (
        Route(
            data=ImportCsvConfirmed,
            workflow=models.WF_PROCESS_CSV,
            workflow_id=lambda e: models.import_workflow_id(str(e.import_id)),
            input=_import,
            search_attributes=lambda e: ui.job_attributes(
                workspace_id=str(e.workspace_id), import_id=str(e.import_id), status="queued"
            ),
            summary=lambda e: f"CSV import {e.import_id} into workspace {e.workspace_id}",
        ),
        Route(
            data=ExportCsvConfirmed,
            workflow=models.WF_PROCESS_EXPORT,
            workflow_id=lambda e: models.export_workflow_id(str(e.export_id)),
            input=_export,
            search_attributes=lambda e: ui.job_attributes(
                workspace_id=str(e.workspace_id), export_id=str(e.export_id), status="queued"
            ),
            summary=lambda e: f"CSV export {e.export_id}",
        ),
        Route(
            data=UserSignedUp,
            workflow=models.WF_SEND_WELCOME,
            workflow_id=lambda e: models.welcome_workflow_id(str(e.user_id)),
            input=lambda e: models.SendWelcomeInput(user_id=str(e.user_id)),
            search_attributes=lambda e: ui.job_attributes(status="queued"),
            summary=lambda e: f"Welcome email for user {e.user_id}",
        ),
    )
}


def route_of(event: EventData) -> Route:
    return ROUTES[event.NAME]


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "data"


def parse_event(name: str, data: str | bytes | dict[str, Any]) -> EventData:
    """Validate an event from the outside (JSON text or a dict); errors name the field."""
    route = ROUTES.get(name)
    if route is None:
        raise EventError(f"unknown event {name!r}; known events: {', '.join(sorted(ROUTES))}")
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise EventError(f"{name}: data is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise EventError(f"{name}: data must be a JSON object, got {type(data).__name__}")
    try:
        return route.data.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{_field(err['loc'])}: {err['msg']}" for err in e.errors())
        raise EventError(f"{name}: invalid data: {problems}") from None


@dataclass(frozen=True)
class Dispatched:
    event: str
    workflow: str
    workflow_id: str
    run_id: str
    task_queue: str
    # False when the event was a duplicate and the existing run was returned.
    started: bool


def check_enabled(settings: Settings, route: Route) -> None:
    try:
        require_enabled(settings, route.job)
    except JobDisabled as e:
        raise JobDisabled(f"{e}: event {route.name} was not dispatched") from None


async def check_event(pool: asyncpg.Pool, event: EventData) -> None:
    """EventError unless the ids the event pairs belong together: the user is a member of
    the workspace and the import or export is that workspace's (spec 001: events carry
    the workspace, so nothing is trusted across it)."""
    workspace_id = getattr(event, "workspace_id", None)
    if workspace_id is None:
        return
    ws, user = str(workspace_id), str(getattr(event, "user_id", ""))
    try:
        await require_member(pool, ws, user)
    except NotAMember as e:
        raise EventError(f"{event.NAME}: {e}") from None
    if isinstance(event, ImportCsvConfirmed):
        found = await imports_repo.get(pool, ws, str(event.import_id)) is not None
        what = f"import {event.import_id}"
    elif isinstance(event, ExportCsvConfirmed):
        found = await exports_repo.in_workspace(pool, ws, str(event.export_id))
        what = f"export {event.export_id}"
    else:
        return
    if not found:
        raise EventError(f"{event.NAME}: {what} not found in workspace {ws}")


async def dispatch(
    client: Client,
    settings: Settings,
    event: EventData,
    *,
    task_queue: str | None = None,
    pool: asyncpg.Pool | None = None,
    summary: str | None = None,
) -> Dispatched:
    """`summary`: the UI's summary line when the caller knows more than the event (the
    uploaded file's name); by default the route's."""
    route = route_of(event)
    check_enabled(settings, route)
    if pool is not None:
        await check_event(pool, event)
    queue = task_queue or settings.temporal_task_queue
    wid = route.workflow_id(event)
    try:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            route.workflow,
            route.input(event),
            id=wid,
            task_queue=queue,
            id_conflict_policy=ID_CONFLICT_POLICY,
            id_reuse_policy=ID_REUSE_POLICY,
            search_attributes=route.search_attributes(event),
            static_summary=summary or route.summary(event),
            static_details=f"event `{route.name}`, job `{route.job.job}`",
        )
    except WorkflowAlreadyStartedError as e:
        # The run for this event already closed: the duplicate is a no-op.
        return Dispatched(route.name, route.workflow, wid, e.run_id or "", queue, started=False)
    # The server says whether it created a run or handed back the open one; the SDK keeps
    # that answer on the handle without a public accessor.
    resp = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(resp, "started", True))
    return Dispatched(route.name, route.workflow, wid, handle.result_run_id or "", queue, started)
