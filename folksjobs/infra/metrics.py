"""Metrics: the SDK's Prometheus endpoint plus the project's own counters on it.

The worker's Temporal Runtime serves Prometheus on METRICS_BIND (`host:port`, path
/metrics): the SDK's metrics (`temporal_workflow_completed_total`,
`temporal_activity_execution_latency_seconds`, task slots, ...) and the counters below,
named by Prometheus conventions: counters end in `_total`, durations are float seconds with
a `_seconds` suffix (the PrometheusConfig switches below; tests/test_ops.py checks the
names the READMEs give against what /metrics serves). The counters go through the SDK's
metric meter (`activity.metric_meter()` / `workflow.metric_meter()`), not a second
prometheus_client port: one endpoint to scrape, labelled by the SDK with namespace,
task queue and activity/workflow type; workflow counters are not counted on replay.

Activities count after their side effect succeeded, so a retried attempt that failed
before the effect counts nothing.
"""

from __future__ import annotations

from temporalio import activity, workflow
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from folksjobs.settings import Settings

PREFIX = "folksjobs_"
COUNTERS = {
    "rows_imported": "CSV rows inserted or updated in contacts",
    "rows_failed": "CSV rows rejected (invalid or failed to upsert)",
    "exports_completed": "exports completed",
    "emails_sent": "emails accepted by the email backend, by kind",
    "digests_sent": "weekly digest emails sent (counted by notify.mailer.CountingSender)",
    "emails_deferred": "email sends put off by a temporary refusal (429, 5xx, timeout, the"
    " cluster's rate), by kind; each is tried again later",
    "emails_given_up": "emails still refused when their delivery window closed, by kind",
}


def build_runtime(settings: Settings) -> Runtime | None:
    """A Runtime exporting Prometheus metrics on settings.metrics_bind, or None (off)."""
    if not settings.metrics_bind:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=settings.metrics_bind,
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
    )


def count(name: str, value: int = 1, **labels: str) -> None:
    """Add to a folksjobs counter from an activity or a workflow; elsewhere a no-op."""
    if name not in COUNTERS:
        raise ValueError(f"unknown counter {name!r}; known: {', '.join(COUNTERS)}")
    if value <= 0:
        return
    if activity.in_activity():
        meter = activity.metric_meter()
    elif workflow.in_workflow():
        meter = workflow.metric_meter()
    else:
        return
    meter.create_counter(PREFIX + name, COUNTERS[name]).add(value, labels or None)


def rows_imported(n: int) -> None:
    count("rows_imported", n)


def rows_failed(n: int) -> None:
    count("rows_failed", n)


def export_completed() -> None:
    count("exports_completed")


def email_sent(kind: str) -> None:
    count("emails_sent", kind=kind)


def digest_sent(n: int = 1) -> None:
    count("digests_sent", n)


def email_deferred(kind: str) -> None:
    count("emails_deferred", kind=kind)


def email_given_up(kind: str) -> None:
    count("emails_given_up", kind=kind)
