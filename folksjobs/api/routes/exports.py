"""/v1/exports: start, status, download."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from folksjobs import confirm
from folksjobs.api.context import ApiError, api_of, key_of
from folksjobs.api.routes.common import json_body, not_found, path_id
from folksjobs.catalog import JobDisabled
from folksjobs.exports import repo as exports_repo
from folksjobs.infra.blob import BlobNotFound
from folksjobs.infra.ui import run_link
from folksjobs.models import export_workflow_id


def _export_view(request: web.Request, rec: dict[str, Any]) -> dict[str, Any]:
    wid = export_workflow_id(rec["id"])
    return {
        "export_id": rec["id"],
        "status": rec["status"],
        "tags": rec["tag_names"],
        "row_count": rec["row_count"],
        "file_bytes": rec["file_bytes"],
        "error": (rec["error_log"] or {}).get("error"),
        "workflow_id": wid,
        "ui": run_link(api_of(request).settings, wid),
        "download": f"/v1/exports/{rec['id']}/download" if rec["status"] == "completed" else None,
    }


async def _export_record(request: web.Request) -> dict[str, Any]:
    export_id = path_id(request, "export")
    try:
        return await exports_repo.find_export(
            api_of(request).services.pool, key_of(request).workspace_id, export_id
        )
    except exports_repo.ExportNotFound:
        raise not_found("export", export_id) from None


async def create_export(request: web.Request) -> web.StreamResponse:
    api, key = api_of(request), key_of(request)
    body = await json_body(request)
    tags, tag_ids = body.get("tags", []), body.get("tag_ids", [])
    for name, value in (("tags", tags), ("tag_ids", tag_ids)):
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise ApiError(422, "invalid_body", f"{name}: expected a list of strings")
    try:
        if tag_ids:
            tags = [
                *tags,
                *await exports_repo.tag_names(api.services.pool, key.workspace_id, tag_ids),
            ]
        export_id, started = await confirm.start_export(
            api.client, api.services.pool, api.settings, key.workspace_id, None, tags
        )
    except exports_repo.InvalidExportRequest as e:
        raise ApiError(422, "invalid_export", str(e)) from None
    except JobDisabled as e:
        raise ApiError(409, "job_disabled", str(e)) from None
    return web.json_response(
        {
            "export_id": export_id,
            "workflow_id": started.workflow_id,
            "ui": run_link(api.settings, started.workflow_id),
        },
        status=202,
    )


async def get_export(request: web.Request) -> web.StreamResponse:
    return web.json_response(_export_view(request, await _export_record(request)), dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=str)


async def download_export(request: web.Request) -> web.StreamResponse:
    rec = await _export_record(request)
    if rec["status"] != "completed" or not rec["blob_key"]:
        raise ApiError(409, "not_ready", f"export {rec['id']} is {rec['status']}")
    blob = api_of(request).services.blob
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="export-{rec["id"]}.csv"',
        }
    )
    size = await blob.size(rec["blob_key"])
    if size is None:
        raise ApiError(410, "gone", f"the file of export {rec['id']} is no longer stored")
    resp.content_length = size
    await resp.prepare(request)
    try:
        async for data in blob.read(rec["blob_key"]):
            await resp.write(data)
    except BlobNotFound:
        resp.force_close()
    await resp.write_eof()
    return resp
