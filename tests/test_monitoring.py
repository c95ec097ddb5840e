"""deploy/monitoring/: the PrometheusRule alerts and the Grafana dashboard name only metrics
that folksjobs pods serve, and cover what operators must hear about (imports failing,
emails deferred or given up, schedule-to-start latency, the digest not run this week).

No Prometheus runs here (promtool is not installable from the registries this project
uses), so the expressions are checked for their metric names, not evaluated."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from folksjobs.api import observe
from folksjobs.infra import metrics
from folksjobs.settings import ROOT

MONITORING = ROOT / "deploy" / "monitoring"
# The Temporal SDK's metrics these files use, as served with the Prometheus options of
# folksjobs/infra/metrics.py (counters `_total`, durations `_seconds`); tests/test_ops.py
# reads the completed/latency ones off a live worker.
SDK = {
    "temporal_workflow_completed_total",
    "temporal_workflow_failed_total",
    "temporal_workflow_canceled_total",
    "temporal_activity_schedule_to_start_latency_seconds",
    "temporal_workflow_task_schedule_to_start_latency_seconds",
    "temporal_activity_execution_latency_seconds",
    "temporal_worker_task_slots_available",
}
# The email delivery counters of issue 26 (emails deferred and given up, by kind), named as
# that change names them; until it lands they are taken on trust.
EMAIL_DELIVERY = {"folksjobs_emails_deferred_total", "folksjobs_emails_given_up_total"}
SERVED = (
    SDK
    | {f"{metrics.PREFIX}{name}_total" for name in metrics.COUNTERS}
    | EMAIL_DELIVERY
    | {f"{observe.REQUESTS}_total", f"{observe.DURATION}_seconds"}
)


def metric_names(expr: str) -> set[str]:
    names = set(re.findall(r"\b((?:temporal|folksjobs)_[a-z_]+)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((MONITORING / "prometheus-rules.yaml").read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_alerts_are_complete_rules_on_served_metrics() -> None:
    for rule in rules():
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        unknown = metric_names(rule["expr"]) - SERVED
        assert not unknown, (rule["alert"], unknown)


def test_alerts_cover_what_operators_must_hear_about() -> None:
    exprs = {r["alert"]: r["expr"] for r in rules()}
    wanted = {
        "imports failing": ('temporal_workflow_failed_total{workflow_type="ProcessCsv"}',),
        "emails given up": ("folksjobs_emails_given_up_total",),
        "emails deferred": ("folksjobs_emails_deferred_total",),
        "schedule-to-start": (
            "temporal_activity_schedule_to_start_latency_seconds_bucket",
            "temporal_workflow_task_schedule_to_start_latency_seconds_bucket",
        ),
        "digest not run": ('temporal_workflow_completed_total{workflow_type="WeeklyDigest"}[8d]',),
    }
    for what, needles in wanted.items():
        for needle in needles:
            assert any(needle in e for e in exprs.values()), what


def test_dashboard_shows_every_alerted_metric_and_only_served_ones() -> None:
    exprs = dashboard_exprs()
    shown = set().union(*(metric_names(e) for e in exprs))
    assert not shown - SERVED, shown - SERVED
    alerted = set().union(*(metric_names(r["expr"]) for r in rules()))
    assert alerted <= shown, alerted - shown
