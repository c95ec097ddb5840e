"""The API in production: readiness that fits its probe, /metrics, request spans joined to
the workflows a request starts (folksjobs/api/readiness.py, folksjobs/api/observe.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from folksjobs.api import keys
from folksjobs.api.app import bound_port, serving
from folksjobs.api.context import API
from folksjobs.api.readiness import Readiness
from folksjobs.devtools import seed
from folksjobs.devtools.devstack import free_port
from folksjobs.infra.logs import JsonFormatter
from folksjobs.infra.metrics import build_runtime
from folksjobs.infra.temporal import connect
from folksjobs.models import WF_SEND_WELCOME
from tests.conftest import Stack, make_settings

# --- readiness ------------------------------------------------------------------------


async def test_readiness_checks_run_at_once_each_bounded() -> None:
    b_started = asyncio.Event()

    async def a() -> None:
        # Answers only if b runs at the same time: checks one after another would fail it.
        await b_started.wait()

    async def b() -> None:
        b_started.set()

    async def stuck() -> None:
        await asyncio.Event().wait()

    ready = Readiness({"a": a, "b": b, "stuck": stuck}, timeout=0.5, ttl=0)
    assert await ready.failed() == {"stuck": "TimeoutError"}
    response = await ready.response()
    assert response.status == 503 and json.loads(response.text or "")["detail"] == (
        "stuck: TimeoutError"
    )


async def test_readiness_is_cached_and_probes_share_a_round() -> None:
    calls = 0
    release = asyncio.Event()

    async def check() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    ready = Readiness({"db": check}, timeout=5, ttl=60)
    probes = [asyncio.create_task(ready.failed()) for _ in range(5)]
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*probes) == [{}] * 5
    assert await ready.failed() == {}
    assert calls == 1
    # A probe that gives up (the kubelet's timeout) does not cancel the others' round.
    ready, release = Readiness({"db": check}, timeout=5, ttl=60), asyncio.Event()
    first = asyncio.create_task(ready.failed())
    second = asyncio.create_task(ready.failed())
    await asyncio.sleep(0.05)
    first.cancel()
    release.set()
    assert await second == {}


# --- /metrics and traces --------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def test_api_metrics_and_request_spans_joined_to_the_workflow(
    stack: Stack, migrated: str, owner_pool: asyncpg.Pool, spans: InMemorySpanExporter
) -> None:
    metrics_bind = f"127.0.0.1:{free_port()}"
    settings = make_settings(
        stack,
        tracing_enabled=True,
        metrics_bind=metrics_bind,
        temporal_task_queue=f"api-ops-{uuid.uuid4().hex[:8]}",
    )
    client = await connect(settings, runtime=build_runtime(settings))
    uid = await seed.create_user(owner_pool, f"ops-{uuid.uuid4().hex[:8]}@example.com", "Ops")
    wid = await seed.create_workspace(owner_pool, uid, "ops")
    caller_trace = uuid.uuid4().hex
    spans.clear()
    async with (
        serving(settings, client, host="127.0.0.1", port=0) as runner,
        aiohttp.ClientSession() as http,
    ):
        base = f"http://127.0.0.1:{bound_port(runner)}"
        assert isinstance(runner.app, web.Application)
        _, secret = await keys.create(runner.app[API].services.pool, wid, "ops")
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{base}/v1/imports/{uuid.uuid4()}") as r:
            assert r.status == 401
        event = {"name": "user/signed.up", "data": {"userId": uid}}
        headers = {
            "Authorization": f"Bearer {secret}",
            "traceparent": f"00-{caller_trace}-{'1' * 16}-01",
        }
        async with http.post(f"{base}/v1/events", json=event, headers=headers) as r:
            assert r.status == 202, await r.text()
        async with http.get(f"http://{metrics_bind}/metrics") as r:
            text = await r.text()
    samples = [
        (m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
        for m in re.finditer(r"^(\w+)\{(.*)\} \S+$", text, re.M)
    ]
    # Labelled by the route's pattern, never the path with its id.
    for name, labels in (
        ("folksjobs_api_requests_total", {"route": "/healthz", "status": "200"}),
        ("folksjobs_api_requests_total", {"route": "/v1/imports/{id}", "status": "401"}),
        ("folksjobs_api_requests_total", {"route": "/v1/events", "status": "202"}),
        ("folksjobs_api_request_duration_seconds_bucket", {"route": "/v1/events"}),
    ):
        assert any(n == name and labels.items() <= have.items() for n, have in samples), (
            name,
            labels,
        )

    by_name = {s.name: s for s in spans.get_finished_spans()}
    request = by_name["POST /v1/events"]
    start = by_name[f"StartWorkflow:{WF_SEND_WELCOME}"]
    # The request continues the caller's trace, and the workflow start hangs from it.
    assert format(request.context.trace_id, "032x") == caller_trace
    assert start.parent is not None and start.parent.span_id == request.context.span_id
    assert (request.attributes or {})["http.response.status_code"] == 202

    # A JSON log line written inside a span carries its ids.
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("probe") as span:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
        line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
