"""Test helpers for outside callers: the `temporal` CLI, and raw payloads over gRPC."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from folksjobs.devtools.devstack import temporal_cli
from tests.conftest import Stack


async def temporal(stack: Stack, *args: str) -> str:
    """Run the `temporal` CLI against the test server, without blocking the worker's loop."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), *args, "--address", stack.temporal.address,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"temporal {' '.join(args[:3])}: {err.decode() or out.decode()}")
    return out.decode()


async def cli_start(
    stack: Stack, workflow: str, wid: str, task_queue: str, data: dict[str, Any] | str
) -> None:
    """`temporal workflow start` as docs/contract.md gives it (the same id policies)."""
    text = data if isinstance(data, str) else json.dumps(data)
    await temporal(
        stack, "workflow", "start", "--type", workflow, "--task-queue", task_queue,
        "--workflow-id", wid, "--id-conflict-policy", "UseExisting",
        "--id-reuse-policy", "AllowDuplicateFailedOnly", "--input", text,
    )  # fmt: skip


async def raw_start(
    client: Client, workflow: str, wid: str, task_queue: str, data: bytes
) -> WorkflowHandle[Any, Any]:
    """Start with a payload of any bytes (malformed JSON included), as a plain gRPC caller."""
    payload = Payload(metadata={"encoding": b"json/plain"}, data=data)
    return await client.start_workflow(workflow, RawValue(payload), id=wid, task_queue=task_queue)


async def failure_of(handle: WorkflowHandle[Any, Any], within: float = 30.0) -> ApplicationError:
    """The run's failure (it must fail, within `within` s): its innermost ApplicationError."""
    try:
        await asyncio.wait_for(handle.result(), within)
    except WorkflowFailureError as e:
        err: BaseException | None = e.cause
        found = None
        while err is not None:
            if isinstance(err, ApplicationError):
                found = found or err
            err = getattr(err, "cause", None)
        assert found is not None, e
        return found
    raise AssertionError(f"{handle.id} completed; it should have failed")


async def result_of(handle: WorkflowHandle[Any, Any], within: float = 60.0) -> dict[str, Any]:
    """The run's result as JSON (it must complete within `within` s)."""
    result = await asyncio.wait_for(handle.result(), within)
    assert isinstance(result, dict), result
    return result
