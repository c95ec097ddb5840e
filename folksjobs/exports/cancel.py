"""Cancelling an export: one way for the CLI and the HTTP API.

A running export is a workflow cancellation: ProcessExport waits for stream-export to
discard its unfinished file, then marks the record cancelled (workflows/export_csv.py).
An export whose run never came (its record only) or whose run is gone is marked here.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from folksjobs.exports import repo as exports
from folksjobs.infra.db import tenant_tx
from folksjobs.models import export_workflow_id

CANCELLABLE = ("pending", "processing")


class NotRunning(ValueError):
    """The export has ended: nothing to cancel."""


async def cancel_export(client: Client, pool: asyncpg.Pool, rec: dict[str, Any]) -> None:
    """`rec`: the export's record (exports.find_export / get_export)."""
    if rec["status"] not in CANCELLABLE:
        raise NotRunning(f"export {rec['id']} is {rec['status']}; nothing to cancel")
    try:
        await client.get_workflow_handle(export_workflow_id(rec["id"])).cancel()
        return
    except RPCError as e:
        if e.status != RPCStatusCode.NOT_FOUND:
            raise
    async with tenant_tx(pool, rec["workspace_id"]) as conn:
        await exports.end(conn, rec["id"], "cancelled by request", cancelled=True)
