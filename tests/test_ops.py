"""Operations: Prometheus metrics on the worker, structured logs, JobStatus in the UI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from folksjobs.devtools.devstack import free_port
from folksjobs.infra import metrics, ui
from folksjobs.infra.logs import JsonFormatter, TextFormatter
from folksjobs.infra.temporal import connect
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput
from folksjobs.notify.mailer import Email, LimitedSender, SendReceipt
from folksjobs.settings import ROOT
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.log_probe import LogProbe, log_probe


def _value(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name` whose labels include `labels`, if any."""
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:{{(.*)}})? ([0-9.e+-]+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


@activity.defn(name="count-every-metric")
async def count_every_metric() -> None:
    """Counts each folksjobs counter once, through the same path the activities use."""
    for name in metrics.COUNTERS:
        metrics.count(name, 1, **({"kind": "probe"} if name == "emails_sent" else {}))


@workflow.defn(name="CountEveryMetric", sandboxed=False)
class CountEveryMetric:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            count_every_metric, start_to_close_timeout=timedelta(seconds=30)
        )


def readme_metric_names() -> set[str]:
    """The metric names the READMEs promise (their METRICS_BIND paragraphs)."""
    row = next(ln for ln in (ROOT / "README.md").read_text().splitlines() if "`METRICS_BIND`" in ln)
    deploy = (ROOT / "deploy" / "README.md").read_text()
    bullet = deploy[deploy.index("- `METRICS_BIND=") : deploy.index("Scrape every")]
    return set(re.findall(r"`((?:temporal|folksjobs)_[a-z_]+)(?:\{\w+\})?`", row + bullet))


async def test_worker_serves_sdk_and_folksjobs_metrics(stack: Stack, tenant: Tenant,
                                                       task_queue: str) -> None:  # fmt: skip
    bind = f"127.0.0.1:{free_port()}"
    settings = make_settings(stack, metrics_bind=bind)
    runtime = metrics.build_runtime(settings)
    assert runtime is not None
    client = await connect(settings, runtime=runtime)
    async with running_worker(client, settings, task_queue):
        await client.execute_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id),
            id=f"welcome-{uuid.uuid4()}", task_queue=task_queue,
        )  # fmt: skip
        async with Worker(
            client,
            task_queue=f"{task_queue}-probe",
            workflows=[CountEveryMetric],
            activities=[count_every_metric],
        ):
            await client.execute_workflow(
                "CountEveryMetric", id=f"probe-{uuid.uuid4()}", task_queue=f"{task_queue}-probe"
            )
        async with aiohttp.ClientSession() as http, http.get(f"http://{bind}/metrics") as resp:
            assert resp.status == 200
            body = await resp.text()
    q = {"task_queue": task_queue}
    assert (
        _value(body, "temporal_workflow_completed_total", workflow_type=WF_SEND_WELCOME, **q) == 1
    )
    assert _value(body, "temporal_activity_execution_latency_seconds_count",
                  activity_type="send-welcome", **q) == 1  # fmt: skip
    assert _value(body, "folksjobs_emails_sent_total", kind="welcome", **q) == 1
    assert "# HELP folksjobs_emails_sent_total emails accepted by the email backend" in body
    families = dict(re.findall(r"^# TYPE (\S+) (\w+)$", body, re.M))
    # Prometheus conventions: counters end in _total; no duration is in milliseconds.
    assert all(n.endswith("_total") for n, t in families.items() if t == "counter")
    assert not [n for n in families if n.endswith(("_ms", "_milliseconds"))]
    assert families["temporal_activity_execution_latency_seconds"] == "histogram"
    promised = readme_metric_names()
    assert {f"folksjobs_{c}_total" for c in metrics.COUNTERS} <= promised
    assert promised - set(families) == set(), "README names that /metrics does not serve"


def test_metrics_off_without_an_address(stack: Stack) -> None:
    assert metrics.build_runtime(make_settings(stack)) is None
    with pytest.raises(ValueError, match="unknown counter 'rows'"):
        metrics.count("rows")
    metrics.rows_imported(5)  # outside a workflow or activity: nothing to count, no error


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_json_logs_carry_workflow_run_activity_and_workspace(
    client: Client, task_queue: str
) -> None:
    capture = Capture()
    loggers = [logging.getLogger("temporalio.workflow"), logging.getLogger("temporalio.activity")]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.INFO)
    workspace_id = str(uuid.uuid4())
    wid = f"log-probe-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(client, task_queue=task_queue, workflows=[LogProbe],
                          activities=[log_probe]):  # fmt: skip
            handle = await client.start_workflow(LogProbe.run, workspace_id, id=wid,
                                                 task_queue=task_queue)  # fmt: skip
            await handle.result()
    finally:
        for lg in loggers:
            lg.removeHandler(capture)
    lines = [json.loads(line) for line in capture.lines]
    wf = next(x for x in lines if x["message"].startswith("probe started"))
    assert wf["workflow_id"] == wid and wf["run_id"] == handle.result_run_id
    assert wf["workflow_type"] == "LogProbeTest" and wf["workspace_id"] == workspace_id
    act = next(x for x in lines if x["message"].startswith("probing for"))
    assert act["workflow_id"] == wid and act["run_id"] == handle.result_run_id
    assert act["activity"] == "log-probe" and act["workspace_id"] == workspace_id
    # Never a raw email address in a log line.
    assert "owner@example.com" not in capture.lines[lines.index(act)]
    assert act["message"].startswith("probing for o***@example.com")


def test_text_logs_mask_email_addresses() -> None:
    args = ("ann@corp.io",)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "sent to %s", args, None)
    assert TextFormatter("%(message)s").format(record) == "sent to a***@corp.io"


async def test_send_welcome_sets_job_status(client: Client, stack: Stack, tenant: Tenant,
                                            task_queue: str) -> None:  # fmt: skip
    settings = make_settings(stack)
    async with running_worker(client, settings, task_queue):
        ok = await client.start_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id),
            id=f"welcome-{uuid.uuid4()}", task_queue=task_queue,
        )  # fmt: skip
        bad = await client.start_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=str(uuid.uuid4())),
            id=f"welcome-{uuid.uuid4()}", task_queue=task_queue,
        )  # fmt: skip
        await ok.result()
        with pytest.raises(WorkflowFailureError):
            await bad.result()
    for handle, status in ((ok, "completed"), (bad, "failed")):
        desc = await handle.describe()
        assert desc.typed_search_attributes.get(ui.JOB_STATUS) == status
    # Findable the way an operator filters in the UI.
    query = f'WorkflowId = "{bad.id}" AND JobStatus = "failed"'
    found: list[str] = []
    for _ in range(100):  # visibility is eventually consistent
        found = [w.id async for w in client.list_workflows(query)]
        if found:
            break
        await asyncio.sleep(0.1)
    assert found == [bad.id]


async def test_worker_process_logs_json_serves_metrics_and_stops_on_sigterm(
    stack: Stack, migrated: str
) -> None:
    """`folksjobs worker` as deployed: LOG_FORMAT=json, METRICS_BIND, SIGTERM."""
    bind = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "TEMPORAL_ADDRESS": stack.temporal.address,
           "DATABASE_URL": stack.database_url, "REDIS_URL": stack.redis_url,
           "TEMPORAL_TASK_QUEUE": f"test-{uuid.uuid4().hex[:12]}", "LOG_FORMAT": "json",
           "METRICS_BIND": bind, "BLOB_URL": str(stack.root / "blobs"),
           "OUTBOX_DIR": str(stack.root / "outbox-worker")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        Path(sys.executable).parent / "folksjobs", "worker", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[dict[str, Any]] = []
    try:
        while not any(x["message"].startswith("worker running") for x in lines):
            raw = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert raw, f"worker exited early: {lines}"
            lines.append(json.loads(raw))
        # The SDK records its first requests just after start: ask until they show.
        body = ""
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"http://{bind}/metrics") as resp:
                    body = await resp.text()
                if "temporal_worker_start_total{" in body and "temporal_request_total{" in body:
                    break
                await asyncio.sleep(0.2)
        assert "temporal_worker_start_total{" in body and "temporal_request_total{" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    registering = next(x for x in lines if x["message"].startswith("registering jobs"))
    assert registering["logger"] == "folksjobs.worker" and registering["level"] == "INFO"
    assert any(x["message"].startswith("Prometheus metrics on") for x in lines)


async def test_email_sends_are_bounded_per_worker() -> None:
    class Slow:
        name = "slow"

        def __init__(self) -> None:
            self.in_flight = self.most = 0
            self.go = asyncio.Event()

        async def send(self, email: Email) -> SendReceipt:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await self.go.wait()
            self.in_flight -= 1
            return SendReceipt(email.idempotency_key, self.name)

        async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
            return [await self.send(e) for e in emails]

    slow = Slow()
    sender = LimitedSender(slow, 2)
    mails = [Email("a@example.com", "s", "t", "<p>t</p>", f"k{i}") for i in range(5)]
    sends = [asyncio.create_task(sender.send(m)) for m in mails]
    for _ in range(20):  # every task gets its turn to try to start its send
        await asyncio.sleep(0)
    assert slow.in_flight == 2
    slow.go.set()
    receipts = await asyncio.gather(*sends)
    assert slow.most == 2 and [r.message_id for r in receipts] == [f"k{i}" for i in range(5)]
