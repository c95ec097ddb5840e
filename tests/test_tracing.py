"""TRACING_ENABLED: one trace from the caller through the workflow to its activity.

The spans are read from the OpenTelemetry SDK's in-memory exporter, installed as the
process's tracer provider (folksjobs.infra.tracing keeps a provider that is already set).
"""

from __future__ import annotations

import uuid

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client

from folksjobs.events import UserSignedUp, dispatch
from folksjobs.infra import tracing
from folksjobs.infra.temporal import connect
from folksjobs.models import WF_SEND_WELCOME
from tests.conftest import Stack, Tenant, make_settings, running_worker


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_off_by_default(stack: Stack) -> None:
    assert tracing.interceptors(make_settings(stack)) == []


async def test_one_trace_spans_caller_workflow_and_activity(
    stack: Stack, tenant: Tenant, task_queue: str, spans: InMemorySpanExporter
) -> None:
    settings = make_settings(stack, tracing_enabled=True, temporal_task_queue=task_queue)
    client: Client = await connect(settings)
    spans.clear()
    async with running_worker(client, settings, task_queue):
        # The starter's path: the event catalog starts the workflow with the traced client.
        started = await dispatch(client, settings, UserSignedUp(user_id=uuid.UUID(tenant.user_id)))
        await client.get_workflow_handle(started.workflow_id).result()
    finished = spans.get_finished_spans()
    span_of = {s.name: s for s in finished}

    def parent(name: str) -> str | None:
        ctx = span_of[name].parent
        return next(
            (n for n, s in span_of.items() if ctx and s.context.span_id == ctx.span_id), None
        )

    start, run = f"StartWorkflow:{WF_SEND_WELCOME}", f"RunWorkflow:{WF_SEND_WELCOME}"
    # The caller's span is the root; the workflow's spans hang from it (workflow spans are
    # replay-safe markers), the activity's run from its scheduling.
    assert {n: parent(n) for n in span_of} == {
        start: None,
        run: start,
        "StartActivity:send-welcome": start,
        "RunActivity:send-welcome": "StartActivity:send-welcome",
        f"CompleteWorkflow:{WF_SEND_WELCOME}": start,
    }
    assert len({s.context.trace_id for s in finished if s.context}) == 1
    assert (span_of[run].attributes or {})["temporalWorkflowID"] == started.workflow_id
