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
  the workspace exists, the user belongs to it, the import or export is the workspace's,
  the tags are the workspace's; `workspace/deleted` comes from the workspace's owner;
  `user/signed.up`'s address is the directory's (an unknown user is registered with it).
- The job's flag off (spec 004): `JobDisabled`, and nothing starts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    Priority,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from folksjobs import models, tenancy
from folksjobs.catalog import JobDisabled, JobSpec, job_by_workflow, require_enabled
from folksjobs.deletion import repo as deletion_repo
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.addresses import parse_email
from folksjobs.infra import ui
from folksjobs.infra.fairness import Lane, workspace_priority
from folksjobs.models import Model
from folksjobs.notify import directory
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
    """A user asked for a CSV export; the export record exists (with its tag filter by
    name). `tagIds` (spec 001) names the filter by the workspace's tag ids instead."""

    NAME = "export/csv.confirmed"
    export_id: UUID
    workspace_id: UUID
    user_id: UUID
    tag_ids: list[UUID] | None = Field(default=None, max_length=1000)


class UserSignedUp(EventData):
    """A user confirmed their email address (no workspace yet). `email` (spec 000): the
    address they confirmed; it must be the directory's, and registers a user the
    directory does not know yet. It never enters the workflow's history."""

    NAME = "user/signed.up"
    user_id: UUID
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("email")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        address, why = parse_email(v, allow_test=True)
        if why:
            raise ValueError(why)
        return address


class WorkspaceDeleted(EventData):
    """The CRM deleted a workspace; `userId` is its owner, who asked for it."""

    NAME = "workspace/deleted"
    workspace_id: UUID
    user_id: UUID


class UserDeleted(EventData):
    """The CRM deleted a user (spec 004's user/deleted)."""

    NAME = "user/deleted"
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
        export_id=str(e.export_id),
        workspace_id=str(e.workspace_id),
        user_id=str(e.user_id),
        tag_ids=None if e.tag_ids is None else [str(t) for t in e.tag_ids],
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
        Route(
            data=WorkspaceDeleted,
            workflow=models.WF_DELETE_WORKSPACE,
            workflow_id=lambda e: models.delete_workspace_workflow_id(str(e.workspace_id)),
            input=lambda e: models.DeleteWorkspaceInput(
                workspace_id=str(e.workspace_id), user_id=str(e.user_id)
            ),
            search_attributes=lambda e: ui.job_attributes(
                workspace_id=str(e.workspace_id), status="queued"
            ),
            summary=lambda e: f"Delete workspace {e.workspace_id}",
        ),
        Route(
            data=UserDeleted,
            workflow=models.WF_DELETE_USER,
            workflow_id=lambda e: models.delete_user_workflow_id(str(e.user_id)),
            input=lambda e: models.DeleteUserInput(user_id=str(e.user_id)),
            search_attributes=lambda e: ui.job_attributes(status="queued"),
            summary=lambda e: f"Delete user {e.user_id}",
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
    the workspace, so nothing is trusted across it). Reads only."""
    if isinstance(event, WorkspaceDeleted):
        return await _check_deletion(pool, event)
    if isinstance(event, UserSignedUp):
        return await _check_signup(pool, event)
    workspace_id = getattr(event, "workspace_id", None)
    if workspace_id is None:
        return
    ws, user = str(workspace_id), str(getattr(event, "user_id", ""))
    try:
        await require_member(pool, ws, user)
    except NotAMember as e:
        raise EventError(f"{event.NAME}: {e}") from None
    if await deletion_repo.being_deleted(pool, ws):
        raise EventError(f"{event.NAME}: workspace {ws} is being deleted")
    if isinstance(event, ImportCsvConfirmed):
        found = await imports_repo.get(pool, ws, str(event.import_id)) is not None
        what = f"import {event.import_id}"
    elif isinstance(event, ExportCsvConfirmed):
        found = await exports_repo.in_workspace(pool, ws, str(event.export_id))
        what = f"export {event.export_id}"
        if found and event.tag_ids is not None:
            try:
                await exports_repo.tag_names(pool, ws, [str(t) for t in event.tag_ids])
            except exports_repo.InvalidExportRequest as e:
                raise EventError(f"{event.NAME}: {e}") from None
    else:
        return
    if not found:
        raise EventError(f"{event.NAME}: {what} not found in workspace {ws}")


def _priority(settings: Settings, event: EventData) -> Priority:
    """A person waits on every job an event starts; a workspace's jobs share its fairness
    key (its activities inherit both, folksjobs/infra/fairness.py). A sign-up has no
    workspace yet: its welcome only takes the key."""
    workspace_id = getattr(event, "workspace_id", None)
    if workspace_id is None:
        return Priority(priority_key=int(Lane.USER))
    return workspace_priority(settings, str(workspace_id))


async def _check_deletion(pool: asyncpg.Pool, event: WorkspaceDeleted) -> None:
    """Only the owner deletes a workspace. One that no longer exists passes: its run (or
    the completed one under the same id) is a no-op."""
    ws, user = str(event.workspace_id), str(event.user_id)
    try:
        owner = await tenancy.workspace_owner(pool, ws)
    except tenancy.WorkspaceNotFound:
        return
    if owner != user:
        raise EventError(
            f"{event.NAME}: user {user} is not the owner of workspace {ws}:"
            " only its owner may delete it"
        )


async def _check_signup(pool: asyncpg.Pool, event: UserSignedUp) -> None:
    if event.email is None:
        return
    try:
        user = await directory.get_user(pool, str(event.user_id))
    except directory.UserDeleted as e:
        raise EventError(f"{event.NAME}: {e}") from None
    except directory.UserNotFound:
        return  # registered by dispatch (register_signup)
    if user.email.lower() != event.email:
        raise EventError(
            f"{event.NAME}: email: not the address user {event.user_id} has in the user directory"
        )


async def register_signup(pool: asyncpg.Pool, event: EventData) -> None:
    """A signed-up user the directory does not know yet, added with the address the event
    carries (spec 000: the event has the address), so the welcome can find it."""
    if isinstance(event, UserSignedUp) and event.email is not None:
        await directory.register_user(pool, str(event.user_id), event.email, event.name)


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
        await register_signup(pool, event)
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
            priority=_priority(settings, event),
        )
    except WorkflowAlreadyStartedError as e:
        # The run for this event already closed: the duplicate is a no-op.
        return Dispatched(route.name, route.workflow, wid, e.run_id or "", queue, started=False)
    # The server says whether it created a run or handed back the open one; the SDK keeps
    # that answer on the handle without a public accessor.
    resp = getattr(handle, "_start_workflow_response", None)
    started = bool(getattr(resp, "started", True))
    return Dispatched(route.name, route.workflow, wid, handle.result_run_id or "", queue, started)
