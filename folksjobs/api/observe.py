"""The API's telemetry: a span per request, joined to the workflows it starts, and request
metrics on the process's Prometheus endpoint.

Metrics go through the Temporal client's Runtime, like the worker's: with METRICS_BIND set,
`folksjobs api` serves /metrics there (the SDK's client metrics and these two), one
mechanism and one scrape config for every folksjobs pod, and no metrics on the public
port. Labels are the route's pattern (`/v1/imports/{id}`), never the path, so ids do not
multiply the series.

With TRACING_ENABLED each request is a SERVER span, continuing the caller's trace when it
sends a W3C `traceparent`; the client's TracingInterceptor makes a workflow started inside
the request (`StartWorkflow:...`) a child of that span, so one trace runs from the HTTP call
through the workflow to its activities.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from temporalio.client import Client
from temporalio.runtime import Runtime

from folksjobs.infra import tracing
from folksjobs.settings import Settings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUESTS = "folksjobs_api_requests"  # served as folksjobs_api_requests_total
DURATION = "folksjobs_api_request_duration"  # served as ..._duration_seconds
UNMATCHED = "unmatched"


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def _span(tracer: Any, request: web.Request, route: str) -> Any:
    if tracer is None:
        return contextlib.nullcontext()
    from opentelemetry.propagate import extract
    from opentelemetry.trace import SpanKind

    return tracer.start_as_current_span(
        f"{request.method} {route}",
        context=extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route},
    )


def observe(settings: Settings, client: Client | None) -> Callable[..., Any]:
    """The outermost middleware: it sees the status the client gets, refusals included.
    Its metrics go to the client's Runtime (the default one, serving nothing, without)."""
    runtime = (client.service_client.config.runtime if client else None) or Runtime.default()
    meter = runtime.metric_meter
    requests = meter.create_counter(REQUESTS, "HTTP requests answered by the API")
    duration = meter.create_histogram_float(DURATION, "HTTP request duration", "seconds")
    tracer = tracing.tracer(settings, "folksjobs.api")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = route_of(request)
        started = time.perf_counter()
        status = 500
        with _span(tracer, request, route) as span:
            try:
                response = await handler(request)
                status = response.status
                return response
            except web.HTTPException as e:
                status = e.status
                raise
            finally:
                labels = {"method": request.method, "route": route, "status": str(status)}
                requests.add(1, labels)
                duration.record(time.perf_counter() - started, labels)
                if span is not None:
                    span.set_attribute("http.response.status_code", status)

    return middleware
