"""Registration gated by flags (spec 004): a disabled job's workflow is not on the worker."""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from folksjobs.models import WF_IMPORT_GATE, WF_SEND_WELCOME, SendWelcomeInput
from folksjobs.settings import ROOT
from tests.conftest import Stack, make_settings, running_worker
from worker import JOBS, build_worker, enabled_jobs


def _names(worker_config: Mapping[str, Any]) -> set[str]:
    from temporalio.workflow import _Definition

    return {_Definition.must_from_class(c).name or "" for c in worker_config["workflows"]}


def test_every_job_flag_is_a_setting(stack: Stack) -> None:
    settings = make_settings(stack)
    for job in JOBS:
        assert getattr(settings, job.flag) is True, job.flag
    assert enabled_jobs(make_settings(stack, job_welcome_enabled=False)) == [
        j for j in JOBS if j.name != "send-welcome"
    ]


async def test_disabled_job_is_not_registered_and_runs_nothing(
    client: Client,
    stack: Stack,
    migrated: str,
    task_queue: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(stack, job_welcome_enabled=False)
    caplog.set_level(logging.INFO, logger="folksjobs.worker")
    async with running_worker(client, settings, task_queue) as services:
        worker = build_worker(client, services, task_queue=f"{task_queue}-inspect")
        config = worker.config()
        assert WF_SEND_WELCOME not in _names(config)
        assert WF_IMPORT_GATE in _names(config)
        assert "send-welcome" not in {getattr(a, "__temporal_activity_definition").name
                                      for a in config["activities"]}  # fmt: skip
        # A start that bypasses dispatch reaches the worker, which refuses the type.
        handle = await client.start_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=str(uuid.uuid4())),
            id=f"welcome-{uuid.uuid4()}", task_queue=task_queue,
        )  # fmt: skip
        failure = ""
        for _ in range(300):
            async for event in handle.fetch_history_events():
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    failure = event.workflow_task_failed_event_attributes.failure.message
            if failure:
                break
            await asyncio.sleep(0.1)
        await handle.terminate("test over")
    assert f"Workflow class {WF_SEND_WELCOME} is not registered" in failure
    # One line per worker built (the running one and the inspected one), all the same.
    [(registered, disabled)] = set(re.findall(r"registering jobs (\[.*?\]) .* \(disabled: (.*)\)",
                                              caplog.text))  # fmt: skip
    assert ast.literal_eval(registered) == [j.name for j in JOBS if j.name != "send-welcome"]
    assert ast.literal_eval(disabled) == ["send-welcome"]
    assert len(list(settings.outbox_dir.glob("*.eml"))) == 0


def _starter(stack: Stack, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal.address,
               "DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url, **env}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "starter", *args], cwd=ROOT, env=environ,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_disabled_digest_gets_no_schedule_and_no_manual_run(
    client: Client, stack: Stack
) -> None:
    sid = f"digest-test-{uuid.uuid4().hex[:8]}"
    off = {"DIGEST_SCHEDULE_ID": sid, "JOB_DIGEST_ENABLED": "false"}
    proc = await asyncio.to_thread(_starter, stack, "schedule", "apply", "--json", **off)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"schedule_id": sid, "outcome": "disabled",
                                       "schedule": "absent"}  # fmt: skip
    with pytest.raises(RPCError) as info:
        await client.get_schedule_handle(sid).describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND

    # A schedule applied while the job was on is paused once the job is switched off.
    proc = await asyncio.to_thread(_starter, stack, "schedule", "apply", DIGEST_SCHEDULE_ID=sid)
    assert proc.returncode == 0, proc.stderr
    try:
        proc = await asyncio.to_thread(_starter, stack, "schedule", "apply", **off)
        assert proc.returncode == 0, proc.stderr
        assert "job weekly-digest is disabled (JOB_DIGEST_ENABLED=false)" in proc.stdout
        desc = await client.get_schedule_handle(sid).describe()
        assert desc.schedule.state.paused
        assert "JOB_DIGEST_ENABLED=false" in (desc.schedule.state.note or "")
    finally:
        await client.get_schedule_handle(sid).delete()

    proc = await asyncio.to_thread(_starter, stack, "digest", **off)
    assert proc.returncode == 2
    assert "job weekly-digest is disabled (JOB_DIGEST_ENABLED=false)" in proc.stderr
