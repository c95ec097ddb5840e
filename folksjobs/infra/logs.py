"""Log setup for the worker and the starter: text or JSON lines, never a raw email.

JSON lines (LOG_FORMAT=json) carry the Temporal context the SDK's loggers attach
(`activity.logger`, `workflow.logger`): workflow id, run id, workflow/activity type,
attempt, task queue; the trace and span ids of the current OpenTelemetry span; and the
workspace id when the code logs with
`extra={"workspace_id": ...}`, inside `log_context(workspace_id=...)`, or in a workflow
whose WorkspaceId search attribute is set. Email addresses in messages are masked.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

from folksjobs.infra.logsafe import redact
from folksjobs.infra.tracing import current_ids
from folksjobs.infra.ui import WORKSPACE_ID

_workspace: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "folksjobs_workspace_id", default=None
)

_WORKFLOW_KEYS = {"workflow_id": "workflow_id", "run_id": "run_id",
                  "workflow_type": "workflow_type", "task_queue": "task_queue",
                  "attempt": "attempt"}  # fmt: skip
_ACTIVITY_KEYS = {"workflow_id": "workflow_id", "workflow_run_id": "run_id",
                  "activity_type": "activity", "activity_id": "activity_id",
                  "workflow_type": "workflow_type", "task_queue": "task_queue",
                  "attempt": "attempt"}  # fmt: skip


@contextlib.contextmanager
def log_context(*, workspace_id: str | None) -> Iterator[None]:
    token = _workspace.set(workspace_id)
    try:
        yield
    finally:
        _workspace.reset(token)


def _workspace_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "workspace_id", None) or _workspace.get()
    if explicit:
        return str(explicit)
    if workflow.in_workflow():
        value = workflow.info().typed_search_attributes.get(WORKSPACE_ID)
        return str(value) if value else None
    return None


def context_of(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, keys in (("temporal_workflow", _WORKFLOW_KEYS),
                       ("temporal_activity", _ACTIVITY_KEYS)):  # fmt: skip
        info = getattr(record, attr, None)
        if isinstance(info, dict):
            out.update({keys[k]: v for k, v in info.items() if k in keys})
    workspace_id = _workspace_of(record)
    if workspace_id:
        out["workspace_id"] = workspace_id
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **context_of(record),
            # Joins a log line to its trace (TRACING_ENABLED): the API's request span, the
            # activity's RunActivity span.
            **current_ids(),
        }
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        # The context goes into JSON fields; not also appended to every message.
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
