"""Traces: one OpenTelemetry trace from the caller through the workflow to its activities.

With TRACING_ENABLED, every client that `folksjobs.infra.temporal.connect` makes carries the
SDK's `TracingInterceptor`; the worker's workflows and activities get it from that client,
so a `folksjobs import ...` (or any caller with the interceptor) starts a trace that the
workflow's and the activities' spans join (`StartWorkflow:ProcessCsv` ->
`RunWorkflow:ProcessCsv` -> `StartActivity:process-batch` -> `RunActivity:process-batch`).

Spans go where the standard OpenTelemetry variables say (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_SERVICE_NAME`, ...), over OTLP/HTTP. A process that already installed a tracer
provider keeps its own. Needs the `otel` extra; workflow spans are zero-length markers (the
interceptor's design: it stays replay-safe), activity spans carry real durations.
"""

from __future__ import annotations

from typing import Any

from folksjobs.settings import Settings


def interceptors(settings: Settings) -> list[Any]:
    """The client interceptors tracing needs: none unless TRACING_ENABLED."""
    if not settings.tracing_enabled:
        return []
    try:
        from opentelemetry import trace
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as e:
        raise RuntimeError(
            "TRACING_ENABLED needs the otel extra: pip install 'folksjobs[otel]'"
        ) from e
    _ensure_provider(trace)
    return [TracingInterceptor(trace.get_tracer("folksjobs"))]


def _ensure_provider(trace: Any) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME, when set, wins over this default (Resource.create reads it).
    provider = TracerProvider(resource=Resource.create({"service.name": "folksjobs"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
