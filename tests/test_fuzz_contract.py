"""Issue 19 item 3: fuzz the gRPC contract against a real worker.

Inputs come from the committed JSON Schemas (docs/schemas, what other services read),
through hypothesis-jsonschema, plus hostile values put into each field and raw bytes that
are not JSON at all. Ids are drawn from real tenants as well as random UUIDs, so the
cross-workspace checks are exercised too. Every fuzzed run must close (failed or
completed) within a bound, and a canary import started first must complete meanwhile.

Bounded for CI: a fixed number of derandomized examples (~150 runs, about a minute).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy
from hypothesis_jsonschema import from_schema
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.models import WF_PROCESS_CSV, WF_PROCESS_EXPORT, WF_SEND_WELCOME, WF_WEEKLY_DIGEST
from tests.callers import raw_start, result_of
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload

SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "schemas"
# Workflows other services may start, and how many inputs of each kind they get.
# WeeklyDigest only gets invalid inputs: a valid one is a real digest of every workspace
# in the shared test database (its own tests cover it).
FUZZED = {WF_PROCESS_CSV: 20, WF_PROCESS_EXPORT: 20, WF_SEND_WELCOME: 20, WF_WEEKLY_DIGEST: 0}
HOSTILE_PER_WORKFLOW = 12
RAW_PER_WORKFLOW = 4
# Every fuzzed run closes within this (a refusal takes a few workflow tasks).
BOUND_SECONDS = 120.0

HOSTILE_VALUES: list[Any] = [
    "", "a" * 70_000, "\x00", "💥" * 500, "' OR 1=1 --", "../../etc/passwd",
    "jane@example.com", "1e308", -1, 0, 10**30, 1e308, -1e308, 1e-308, True, None, [], {},
    {"nested": ["x"] * 100}, str(uuid.uuid4()).upper(), " " + str(uuid.uuid4()),
]  # fmt: skip
RAW_BYTES: list[bytes] = [b"", b"{", b"null", b"[]", b'"text"', b'{"user_id": NaN}',
                          b"\xff\xfe", b'{"a": 1, "a": 2}']  # fmt: skip


INPUT_SCHEMAS = {
    WF_PROCESS_CSV: "ProcessCsvInput",
    WF_PROCESS_EXPORT: "ProcessExportInput",
    WF_SEND_WELCOME: "SendWelcomeInput",
    WF_WEEKLY_DIGEST: "WeeklyDigestInput",
}


def _schema(workflow: str) -> dict[str, Any]:
    path = SCHEMAS / f"{INPUT_SCHEMAS[workflow]}.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _with_real_ids(schema: dict[str, Any], ids: list[str]) -> SearchStrategy[dict[str, Any]]:
    """Valid inputs, where each id field may instead be a real tenant's id."""

    def swap(draw_ids: dict[str, str | None], value: dict[str, Any]) -> dict[str, Any]:
        return {k: (draw_ids.get(k) or v) for k, v in value.items()}

    id_fields = [k for k in schema.get("properties", {}) if k.endswith("_id")]
    real = st.fixed_dictionaries({k: st.none() | st.sampled_from(ids) for k in id_fields})
    return st.builds(swap, real, from_schema(schema))


def _hostile(schema: dict[str, Any], ids: list[str]) -> SearchStrategy[dict[str, Any]]:
    """A valid-looking input with one field (or an unknown one) set to a hostile value."""
    fields = [*schema.get("properties", {}), "resume", "unknown_field"]

    def poison(base: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
        return {**base, field: value}

    return st.builds(
        poison,
        _with_real_ids(schema, ids),
        st.sampled_from(fields),
        st.sampled_from(HOSTILE_VALUES),
    )


def _collect(strategy: SearchStrategy[Any], n: int) -> list[Any]:
    """`n` examples, the same on every run (derandomized): a CI failure reproduces."""
    out: list[Any] = []
    if n <= 0:
        return out

    @settings(max_examples=n, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(strategy)
    def gather(x: Any) -> None:
        out.append(x)

    gather()
    return out


def fuzz_inputs(ids: list[str]) -> list[tuple[str, bytes]]:
    runs: list[tuple[str, bytes]] = []
    for workflow, valid in FUZZED.items():
        schema = _schema(workflow)
        for value in _collect(_with_real_ids(schema, ids), valid):
            runs.append((workflow, json.dumps(value).encode()))
        for value in _collect(_hostile(schema, ids), HOSTILE_PER_WORKFLOW):
            runs.append((workflow, json.dumps(value).encode()))
        runs += [(workflow, raw) for raw in RAW_BYTES[:RAW_PER_WORKFLOW]]
    return runs


@pytest.mark.timeout(400)
async def test_fuzzed_contract_inputs_all_close_and_the_canary_completes(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: Any, task_queue: str
) -> None:
    from folksjobs.devtools import seed

    other_user = await seed.create_user(owner_pool, f"fz-{uuid.uuid4().hex[:8]}@example.com", "F")
    other_ws = await seed.create_workspace(owner_pool, other_user, "Fuzz other")
    settings_ = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings_, task_queue) as services:
        rows = [["email"], *[[f"c{i}@example.com"] for i in range(20)]]
        up = await upload(services, settings_, tenant.workspace_id, tenant.user_id, csv_bytes(rows))
        # A second pending import the fuzzed runs may name (and even run): never the
        # canary's, whose own run must not be raced by them.
        target = await upload(services, settings_, tenant.workspace_id, tenant.user_id,
                              csv_bytes([["email"], ["t@example.com"]]))  # fmt: skip
        ids = [tenant.user_id, tenant.workspace_id, other_user, other_ws, target.import_id]
        runs = fuzz_inputs(ids)
        canary = await confirm_import(client, services.pool, settings_, tenant.workspace_id,
                                      up.import_id)  # fmt: skip
        started = time.monotonic()
        handles = await asyncio.gather(*(
            raw_start(client, wf, f"fuzz-{i}-{uuid.uuid4().hex[:8]}", task_queue, data)
            for i, (wf, data) in enumerate(runs)
        ))  # fmt: skip
        canary_result = await result_of(canary, BOUND_SECONDS)

        async def closed(h: Any) -> str:
            try:
                await asyncio.wait_for(h.result(), BOUND_SECONDS - (time.monotonic() - started))
            except WorkflowFailureError:
                return "failed"
            except TimeoutError:
                return "open"
            return "completed"

        outcomes = await asyncio.gather(*(closed(h) for h in handles))
        still_running = [
            (runs[i][0], runs[i][1][:200], h.id)
            for i, h in enumerate(handles)
            if (await h.describe()).status == WorkflowExecutionStatus.RUNNING
        ]
    assert canary_result["status"] == "completed" and canary_result["inserted"] == 20
    assert not still_running, still_running
    assert "open" not in outcomes
    assert outcomes.count("failed") > len(runs) // 2  # most fuzzed inputs are refused
