"""The event catalog and dispatch(): validation, routing, flags, duplicates, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from pydantic.alias_generators import to_camel
from temporalio import workflow as wf
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from folksjobs import models
from folksjobs.events import (
    ROUTES,
    EventError,
    ExportCsvConfirmed,
    ImportCsvConfirmed,
    JobDisabled,
    UserSignedUp,
    dispatch,
    parse_event,
)
from folksjobs.infra import ui
from folksjobs.settings import ROOT
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.jobcases import CASES
from worker import all_workflows

IDS = {"importId": str(uuid.uuid4()), "exportId": str(uuid.uuid4()),
       "workspaceId": str(uuid.uuid4()), "userId": str(uuid.uuid4())}  # fmt: skip


def _data(name: str) -> dict[str, str]:
    fields = ROUTES[name].data.model_json_schema(by_alias=True)["required"]
    return {f: IDS[f] for f in fields}


def test_catalog_covers_the_spec_events_and_every_event_carries_user_id() -> None:
    assert set(ROUTES) == {"import/csv.confirmed", "export/csv.confirmed", "user/signed.up",
                           "workspace/deleted", "user/deleted"}  # fmt: skip
    for name, route in ROUTES.items():
        fields = route.data.model_json_schema(by_alias=True)["properties"]
        assert "userId" in fields, name
    assert "workspaceId" in ImportCsvConfirmed.model_json_schema(by_alias=True)["properties"]
    assert "workspaceId" in ExportCsvConfirmed.model_json_schema(by_alias=True)["properties"]


@pytest.mark.parametrize(
    ("name", "workflow", "wid", "flag", "input_type"),
    [
        ("import/csv.confirmed", "ProcessCsv", f"import-{IDS['importId']}", "job_import_enabled",
         models.ProcessCsvInput),
        ("export/csv.confirmed", "ProcessExport", f"export-{IDS['exportId']}",
         "job_export_enabled", models.ProcessExportInput),
        ("user/signed.up", "SendWelcome", f"welcome-{IDS['userId']}", "job_welcome_enabled",
         models.SendWelcomeInput),
        ("workspace/deleted", "DeleteWorkspace", f"delete-workspace-{IDS['workspaceId']}",
         "job_deletion_enabled", models.DeleteWorkspaceInput),
        ("user/deleted", "DeleteUser", f"delete-user-{IDS['userId']}", "job_deletion_enabled",
         models.DeleteUserInput),
    ],
)  # fmt: skip
def test_each_event_routes_to_its_workflow_id_flag_and_input(
    name: str, workflow: str, wid: str, flag: str, input_type: type
) -> None:
    event = parse_event(name, json.dumps(_data(name)))
    route = ROUTES[name]
    assert route.workflow == workflow
    assert route.workflow_id(event) == wid
    assert route.job.flag == flag
    inp = route.input(event)
    assert isinstance(inp, input_type)
    # The workflow input is snake_case with the same ids (what the CLI would send).
    dumped = inp.model_dump(exclude_none=True)
    for camel, value in _data(name).items():
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
        assert dumped[snake] == value


def test_snake_case_names_are_accepted_too() -> None:
    event = parse_event("user/signed.up", {"user_id": IDS["userId"]})
    assert event == UserSignedUp(user_id=uuid.UUID(IDS["userId"]))


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("user/signed.upp", "{}", "unknown event 'user/signed.upp'; known events: "
         "export/csv.confirmed, import/csv.confirmed, user/deleted, user/signed.up, "
         "workspace/deleted"),
        ("import/csv.confirmed", {"importId": IDS["importId"], "userId": IDS["userId"]},
         "import/csv.confirmed: invalid data: workspaceId: Field required"),
        ("import/csv.confirmed", dict(IDS),
         "exportId: Extra inputs are not permitted"),
        ("export/csv.confirmed", {"exportId": "42", "workspaceId": IDS["workspaceId"],
                                  "userId": IDS["userId"]},
         "export/csv.confirmed: invalid data: exportId: Input should be a valid UUID"),
        ("user/signed.up", {"userId": "someone@example.com"},
         "userId: Input should be a valid UUID"),
        ("user/signed.up", "{not json", "user/signed.up: data is not valid JSON"),
        ("user/signed.up", "[1]", "user/signed.up: data must be a JSON object, got list"),
        ("user/signed.up", {"userId": IDS["userId"], "email": "not an address"},
         "user/signed.up: invalid data: email: Value error, invalid email address"),
        ("export/csv.confirmed", {"exportId": IDS["exportId"], "workspaceId": IDS["workspaceId"],
                                  "userId": IDS["userId"], "tagIds": ["vip"]},
         "export/csv.confirmed: invalid data: tagIds.0: Input should be a valid UUID"),
        ("workspace/deleted", {"workspaceId": IDS["workspaceId"]},
         "workspace/deleted: invalid data: userId: Field required"),
    ],
)  # fmt: skip
def test_bad_events_get_an_error_naming_the_field(name: str, data: object, message: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(name, data)  # type: ignore[arg-type]
    assert message in str(info.value)


async def _exists(client: Client, wid: str) -> bool:
    try:
        await client.get_workflow_handle(wid).describe()
    except RPCError as e:
        assert e.status == RPCStatusCode.NOT_FOUND
        return False
    return True


@pytest.mark.parametrize(
    ("name", "flag", "message"),
    [
        ("import/csv.confirmed", "job_import_enabled",
         "job process-csv is disabled (JOB_IMPORT_ENABLED=false)"),
        ("export/csv.confirmed", "job_export_enabled",
         "job process-export is disabled (JOB_EXPORT_ENABLED=false)"),
        ("user/signed.up", "job_welcome_enabled",
         "job send-welcome is disabled (JOB_WELCOME_ENABLED=false)"),
        ("workspace/deleted", "job_deletion_enabled",
         "job delete-workspace is disabled (JOB_DELETION_ENABLED=false)"),
    ],
)  # fmt: skip
async def test_disabled_job_is_refused_and_nothing_starts(
    client: Client, stack: Stack, task_queue: str, name: str, flag: str, message: str
) -> None:
    settings = make_settings(stack, **{flag: False})
    data = {k: str(uuid.uuid4()) for k in _data(name)}
    event = parse_event(name, data)
    with pytest.raises(JobDisabled) as info:
        await dispatch(client, settings, event, task_queue=task_queue)
    assert message in str(info.value)
    assert not await _exists(client, ROUTES[name].workflow_id(event))


async def test_welcome_end_to_end_through_dispatch_and_duplicates_are_no_ops(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    event = parse_event("user/signed.up", {"userId": tenant.user_id})
    async with running_worker(client, settings, task_queue):
        first, again = [await dispatch(client, settings, event, task_queue=task_queue)
                        for _ in range(2)]  # fmt: skip
        assert first.started and first.workflow_id == f"welcome-{tenant.user_id}"
        assert not again.started and again.run_id == first.run_id
        handle = client.get_workflow_handle(first.workflow_id, run_id=first.run_id)
        result = await handle.result()
        # The run has closed: the same event again is still the same run, not a new email.
        late = await dispatch(client, settings, event, task_queue=task_queue)
    assert result["backend"] == "outbox"
    assert not late.started and late.run_id == first.run_id
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1
    desc = await handle.describe()
    assert desc.typed_search_attributes.get(ui.JOB_STATUS) == "completed"
    assert await desc.static_summary() == f"Welcome email for user {tenant.user_id}"
    assert "user/signed.up" in (await desc.static_details() or "")


def _starter(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal.address,
               "DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url, **env}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "starter", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["dispatch", "user/signed.upp", "--data", "{}"], {}, "unknown event 'user/signed.upp'"),
        (["dispatch", "import/csv.confirmed", "--data", '{"importId": "x"}'], {},
         "importId: Input should be a valid UUID"),
        (["dispatch", "user/signed.up", "--data", json.dumps({"userId": IDS["userId"]})],
         {"JOB_WELCOME_ENABLED": "false"},
         "job send-welcome is disabled (JOB_WELCOME_ENABLED=false)"),
    ],
)  # fmt: skip
async def test_starter_dispatch_refuses_with_exit_code_2(
    stack: Stack, args: list[str], env: dict[str, str], message: str
) -> None:
    proc = await asyncio.to_thread(_starter, stack, *args, **env)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == ""


async def test_starter_dispatch_starts_the_welcome(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, tmp_path: Path
) -> None:
    settings = make_settings(stack)
    data = json.dumps({"userId": tenant.user_id})
    async with running_worker(client, settings, task_queue):
        proc = await asyncio.to_thread(
            _starter, stack, "dispatch", "user/signed.up", "--data", data,
            "--task-queue", task_queue, "--wait", "--json",
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["workflow_id"] == f"welcome-{tenant.user_id}"
    assert out["started"] is True
    assert out["result"]["backend"] == "outbox"
    assert out["ui"].endswith(f"/workflows/welcome-{tenant.user_id}")
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 1


REGISTERED = {wf._Definition.must_from_class(c).name for c in all_workflows()}


@pytest.mark.parametrize("name", sorted(ROUTES))
async def test_each_event_end_to_end_through_dispatch(
    name: str, client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool,
    task_queue: str,
) -> None:  # fmt: skip
    route = ROUTES[name]
    if route.workflow not in REGISTERED:
        pytest.skip(f"{route.workflow} is not registered in worker.JOBS yet (job not merged)")
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue) as services:
        _, values = await CASES[route.workflow].setup(tenant, owner_pool, services)
        event = parse_event(name, {to_camel(k): v for k, v in values.items()})
        d = await dispatch(client, settings, event, task_queue=task_queue)
        assert d.started and d.workflow_id == route.workflow_id(event)
        result = await client.get_workflow_handle(d.workflow_id, run_id=d.run_id).result()
        again = await dispatch(client, settings, event, task_queue=task_queue)
    CASES[route.workflow].check(result)
    assert (again.started, again.run_id) == (False, d.run_id)
