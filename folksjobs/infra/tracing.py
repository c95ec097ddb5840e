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

try:  # the otel extra; only current_ids() uses it unconditionally (every JSON log line)
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - the image and the tests have it
    _otel_trace = None  # type: ignore[assignment]


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


def tracer(settings: Settings, name: str = "folksjobs") -> Any | None:
    """A tracer for the process's own spans (the API's requests), or None unless
    TRACING_ENABLED. Same provider as the client interceptor, so one trace."""
    if not settings.tracing_enabled:
        return None
    from opentelemetry import trace

    _ensure_provider(trace)
    return trace.get_tracer(name)


def current_ids() -> dict[str, str]:
    """The current span's trace and span ids as hex, for log lines; empty outside a span
    or without the otel extra."""
    if _otel_trace is None:
        return {}
    ctx = _otel_trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}
