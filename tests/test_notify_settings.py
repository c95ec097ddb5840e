"""Workspace settings that are read: notify_on_import_complete decides the import's
completion email (and its error report), as notify_on_export_complete does the export's."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.client import Client

from folksjobs.devtools import seed
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, import_bytes

# One bad row in three: above ERROR_REPORT_THRESHOLD, so the error report is due too.
CSV = csv_bytes([["email"], ["ann@example.com"], ["not an address"], ["bob@example.com"]])


@pytest.mark.parametrize(("notify", "emails"), [(True, 2), (False, 0)])
async def test_notify_on_import_complete_decides_the_emails(
    client: Client, stack: Stack, tenant: Tenant, owner_pool: asyncpg.Pool, task_queue: str,
    notify: bool, emails: int,
) -> None:  # fmt: skip
    await seed.create_workspace(
        owner_pool, tenant.user_id, workspace_id=tenant.workspace_id,
        notify_on_import_complete=notify,
    )  # fmt: skip
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        _, result = await import_bytes(
            client, services, settings, tenant.workspace_id, tenant.user_id, CSV
        )
    assert (result["status"], result["inserted"], result["failed"]) == ("completed", 2, 1)
    assert len(list(settings.outbox_dir.glob("*.eml"))) == emails
