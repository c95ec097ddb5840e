"""Test helpers for imports: upload bytes, confirm, wait, read back what users see."""

from __future__ import annotations

import io
import json
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowHistory

from folksjobs.confirm import confirm_import
from folksjobs.imports.uploads import UploadResult, upload_csv
from folksjobs.models import AvatarProgress, avatars_workflow_id
from folksjobs.services import Services
from folksjobs.settings import Settings


def csv_bytes(rows: list[list[str]], *, newline: str = "\n", bom: bool = False) -> bytes:
    def cell(v: str) -> str:
        return f'"{v.replace(chr(34), chr(34) * 2)}"' if any(c in v for c in ',"\r\n') else v

    text = newline.join(",".join(cell(v) for v in row) for row in rows) + newline
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


async def upload(
    services: Services,
    settings: Settings,
    workspace_id: str,
    user_id: str,
    data: bytes,
    name: str = "contacts.csv",
    overrides: list[str] | None = None,
) -> UploadResult:
    return await upload_csv(
        services.pool,
        services.blob,
        settings,
        io.BytesIO(data),
        name,
        workspace_id,
        user_id,
        overrides,
    )


async def import_bytes(
    client: Client,
    services: Services,
    settings: Settings,
    workspace_id: str,
    user_id: str,
    data: bytes,
    overrides: list[str] | None = None,
) -> tuple[UploadResult, dict[str, Any]]:
    up = await upload(services, settings, workspace_id, user_id, data, overrides=overrides)
    handle = await confirm_import(client, services.pool, settings, workspace_id, up.import_id)
    result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    return up, result


async def contacts(owner: asyncpg.Pool, workspace_id: str) -> dict[str, dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT email, first_name, last_name, company, phone, avatar_url, custom_fields"
        " FROM contacts WHERE workspace_id = $1::uuid ORDER BY email",
        workspace_id,
    )
    return {r["email"]: dict(r) for r in rows}


async def import_row(owner: asyncpg.Pool, import_id: str) -> dict[str, Any]:
    r = await owner.fetchrow("SELECT * FROM imports WHERE id = $1::uuid", import_id)
    assert r is not None
    return dict(r)


async def avatars_done(client: Client, import_id: str) -> AvatarProgress:
    """The import's avatars job's result: every avatar it owed is in (they arrive after
    the import completes)."""
    handle = client.get_workflow_handle(avatars_workflow_id(import_id), result_type=AvatarProgress)
    return await handle.result()


def local_activities(history: WorkflowHistory) -> list[tuple[str, int]]:
    """(activity type, attempt) of each local activity the run recorded, in order: they
    leave a marker each, not the scheduled/started/completed events of an activity."""
    out = []
    for e in history.events:  # core names the marker "core_local_activity"
        m = e.marker_recorded_event_attributes
        if (
            e.HasField("marker_recorded_event_attributes")
            and m.marker_name == "core_local_activity"
        ):
            data = json.loads(m.details["data"].payloads[0].data)
            out.append((data["activity_type"], int(data["attempt"])))
    return out
