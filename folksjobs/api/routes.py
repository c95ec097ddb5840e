"""The routes: each takes its workspace from the key, never from the URL or the body.

An id of another workspace answers 404 exactly like an id that does not exist: every
lookup goes through the tenant-scoped repositories, which cannot see other workspaces.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
from aiohttp import BodyPartReader, web
from temporalio.service import RPCError

from folksjobs import confirm
from folksjobs.api.context import ApiError, api_of, key_of
from folksjobs.catalog import JobDisabled
from folksjobs.events import ROUTES, EventError, UserDeleted, dispatch, parse_event
from folksjobs.exports import cancel as export_cancel
from folksjobs.exports import repo as exports_repo
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.mapping import (
    STANDARD_FIELDS,
    MappingError,
    apply_overrides,
    validate_mapping,
)
from folksjobs.imports.repo import ImportRow
from folksjobs.imports.uploads import (
    READ_SIZE,
    NotCsvUpload,
    UploadRefused,
    UploadResult,
    UploadTooLarge,
    upload_stream,
)
from folksjobs.infra.blob import BlobNotFound
from folksjobs.infra.ui import run_link
from folksjobs.models import export_workflow_id
from folksjobs.notify.directory import NotAMember, require_member

log = logging.getLogger("folksjobs.api")

ENDED = ("completed", "failed", "cancelled")
# Pieces handed to the parser's thread: one loop hop per piece, not per TCP read.
PIECE_BYTES = 256 * 1024
# A comment line this often keeps proxies from closing a quiet progress stream.
KEEPALIVE_SECONDS = 15.0
# A multipart body is the file plus its boundaries and part headers: a declared length may
# exceed the file limit by this much before it is refused unread.
FORM_OVERHEAD_BYTES = 64 * 1024
QUERY_TIMEOUT = timedelta(seconds=2)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/healthz", healthz)
    router.add_get("/readyz", readyz)
    router.add_post("/v1/imports", create_import)
    router.add_get("/v1/imports/{id}", get_import)
    router.add_put("/v1/imports/{id}/mapping", set_mapping)
    router.add_post("/v1/imports/{id}/confirm", confirm_import)
    router.add_get("/v1/imports/{id}/events", import_events)
    router.add_post("/v1/imports/{id}/cancel", cancel_import)
    router.add_post("/v1/exports", create_export)
    router.add_get("/v1/exports/{id}", get_export)
    router.add_get("/v1/exports/{id}/download", download_export)
    router.add_post("/v1/exports/{id}/cancel", cancel_export)
    router.add_post("/v1/events", send_event)


# --- helpers ------------------------------------------------------------------------


def _not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {ident}")


def _id(request: web.Request, kind: str) -> str:
    raw = request.match_info["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise _not_found(kind, raw) from None


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return body


async def _import_row(request: web.Request) -> ImportRow:
    import_id = _id(request, "import")
    row = await imports_repo.get(
        api_of(request).services.pool, key_of(request).workspace_id, import_id
    )
    if row is None:
        raise _not_found("import", import_id)
    return row


def _import_view(request: web.Request, row: ImportRow) -> dict[str, Any]:
    return {
        "import_id": row.id,
        "status": row.status,
        "file_name": row.file_name,
        "total_rows": row.total_rows,
        "processed_rows": row.processed_rows,
        "counts": _counts(row),
        "headers": row.headers,
        "mapping": row.column_mapping,
        "warnings": row.warnings,
        "error_samples": row.error_samples,
        "error": (row.error_log or {}).get("error"),
        "ai_summary": row.ai_summary,
        "workflow_id": row.workflow_id,
        "ui": run_link(api_of(request).settings, row.workflow_id) if row.workflow_id else None,
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "duration_ms": row.duration_ms,
    }


def _counts(row: ImportRow) -> dict[str, int]:
    return {
        "processed": row.processed_rows,
        "inserted": row.inserted_rows,
        "updated": row.updated_rows,
        "failed": row.failed_rows,
        "duplicates": row.duplicate_rows,
    }


# --- health ---------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    api = api_of(request)
    checks: dict[str, Callable[[], Awaitable[object]]] = {
        "postgres": lambda: api.services.pool.fetchval("SELECT 1"),
        "redis": lambda: api.services.redis.ping(),
        "temporal": lambda: api.client.service_client.check_health(),
        "blob": lambda: api.services.blob.size("readyz/probe"),
    }
    failed: dict[str, str] = {}
    for name, check in checks.items():
        try:
            async with asyncio.timeout(3):
                await check()
        except Exception as e:
            # The route needs no key: the answer names the dependency, the log the reason.
            log.warning("readyz: %s does not answer: %r", name, e)
            failed[name] = type(e).__name__
    if failed:
        detail = "; ".join(f"{k}: {v}" for k, v in failed.items())
        return web.json_response({"error": "not_ready", "detail": detail}, status=503)
    return web.json_response({"status": "ready", "checks": sorted(checks)})


# --- imports ------------------------------------------------------------------------


async def _body_pieces(
    read: Callable[[], Awaitable[bytes]], deadline: float
) -> AsyncIterator[bytes]:
    """The body as PIECE_BYTES pieces; the whole body must arrive before `deadline`."""
    buf = bytearray()
    while True:
        try:
            async with asyncio.timeout_at(deadline):
                data = await read()
        except TimeoutError:
            raise ApiError(408, "request_timeout", "the body did not arrive in time") from None
        if not data:
            break
        buf += data
        if len(buf) >= PIECE_BYTES:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


async def create_import(request: web.Request) -> web.StreamResponse:
    api, key = api_of(request), key_of(request)
    limit = api.settings.upload_max_bytes
    # A declared length is only a hint (the limit is enforced on the bytes read), but one
    # that is already too large is refused before a byte of the body is read.
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD_BYTES:
        raise ApiError(413, "too_large", f"the body is larger than the {limit:,}-byte limit")
    deadline = asyncio.get_running_loop().time() + api.settings.api_read_timeout_seconds
    async with api.upload_slot(key):
        kind = request.content_type
        if kind == "multipart/form-data":
            up = await _multipart_upload(request, deadline)
        elif kind in ("text/csv", "text/plain", "application/octet-stream"):
            name = request.query.get("filename", "upload.csv")
            up = await _upload(request, _body_pieces(request.content.readany, deadline), name)
        else:
            raise ApiError(
                415,
                "unsupported_media_type",
                "send multipart/form-data with a `file` part, or a text/csv body",
            )
    return web.json_response(
        {
            "import_id": up.import_id,
            "status": "pending",
            "file_name": up.file_name,
            "file_bytes": up.file_bytes,
            "total_rows": up.total_rows,
            "headers": up.headers,
            "preview": up.preview,
            "mapping": up.mapping,
            # What a header may map to, besides custom:<name> and skip.
            "fields": STANDARD_FIELDS,
            "delimiter": up.format.delimiter,
            "encoding": up.format.encoding,
            "warnings": up.warnings,
        },
        status=201,
    )


async def _multipart_upload(request: web.Request, deadline: float) -> UploadResult:
    reader = await request.multipart()
    encoding: str | None = None
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(422, "invalid_body", "nested multipart bodies are not accepted")
        if part.name == "encoding":
            encoding = (await part.read_chunk(64)).decode("ascii", "replace").strip()
        elif part.name == "file":
            return await _upload(
                request,
                _body_pieces(functools.partial(part.read_chunk, READ_SIZE), deadline),
                part.filename or "upload.csv",
                encoding,
            )
        else:
            await part.release()
    raise ApiError(422, "missing_file", "the form has no `file` part (send it after `encoding`)")


async def _upload(
    request: web.Request, pieces: AsyncIterator[bytes], name: str, encoding: str | None = None
) -> UploadResult:
    api, key = api_of(request), key_of(request)
    owner = await exports_repo.workspace_owner(api.services.pool, key.workspace_id)
    try:
        return await upload_stream(
            api.services.pool, api.services.blob, api.settings, pieces, name,
            key.workspace_id, owner, encoding=encoding,
        )  # fmt: skip
    except UploadTooLarge as e:
        raise ApiError(413, "too_large", str(e)) from None
    except NotCsvUpload as e:
        raise ApiError(415, "not_csv", str(e)) from None
    except (UploadRefused, MappingError) as e:
        raise ApiError(422, "invalid_csv", str(e)) from None


async def get_import(request: web.Request) -> web.StreamResponse:
    return web.json_response(_import_view(request, await _import_row(request)))


async def set_mapping(request: web.Request) -> web.StreamResponse:
    row = await _import_row(request)
    body = await _json_body(request)
    chosen = body.get("mapping")
    if not isinstance(chosen, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in chosen.items()
    ):
        raise ApiError(422, "invalid_body", 'mapping: expected {"<header>": "<field>", ...}')
    try:
        mapping = apply_overrides(
            row.headers, row.column_mapping, [f"{h}={f}" for h, f in chosen.items()]
        )
        validate_mapping(mapping)
    except MappingError as e:
        raise ApiError(422, "invalid_mapping", str(e)) from None
    api = api_of(request)
    if not await imports_repo.set_mapping(api.services.pool, row.workspace_id, row.id, mapping):
        raise ApiError(409, "not_pending", f"import {row.id} is {row.status}; it was confirmed")
    return web.json_response({"import_id": row.id, "headers": row.headers, "mapping": mapping})


async def confirm_import(request: web.Request) -> web.StreamResponse:
    row = await _import_row(request)
    api = api_of(request)
    try:
        handle = await confirm.confirm_import(
            api.client, api.services.pool, api.settings, row.workspace_id, row.id
        )
    except MappingError as e:
        raise ApiError(422, "invalid_mapping", str(e)) from None
    except EventError as e:  # the uploader is no longer a member of the workspace
        raise ApiError(422, "invalid_event", str(e)) from None
    except JobDisabled as e:
        raise ApiError(409, "job_disabled", str(e)) from None
    return web.json_response(
        {"import_id": row.id, "workflow_id": handle.id, "ui": run_link(api.settings, handle.id)},
        status=202,
    )


async def _stage(request: web.Request, row: ImportRow) -> str:
    """The workflow's own stage while it runs (the record only knows `processing`)."""
    if row.status != "processing" or not row.workflow_id:
        return row.status
    try:
        progress = (
            await api_of(request)
            .client.get_workflow_handle(row.workflow_id)
            .query("progress", rpc_timeout=QUERY_TIMEOUT)
        )
        return str(progress["stage"])
    except Exception:  # between continue-as-new runs, or no worker yet: the record's word
        return row.status


async def import_events(request: web.Request) -> web.StreamResponse:
    """Server-sent progress until the import ends. Every event carries the whole state,
    so a client reconnecting with Last-Event-ID misses nothing; the `end` event carries
    the final counts."""
    row = await _import_row(request)
    api = api_of(request)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    last_id = request.headers.get("Last-Event-ID")
    last_write = time.monotonic()
    while True:
        ended = row.status in ENDED
        data = _import_view(request, row) | {"stage": await _stage(request, row)}
        event_id = f"{row.status}-{row.processed_rows}-{data['stage']}"
        if event_id != last_id or ended:
            name = "end" if ended else "progress"
            frame = f"id: {event_id}\nevent: {name}\ndata: {json.dumps(data)}\n\n"
            await resp.write(frame.encode())
            last_id, last_write = event_id, time.monotonic()
        elif time.monotonic() - last_write > KEEPALIVE_SECONDS:
            await resp.write(b": keep-alive\n\n")
            last_write = time.monotonic()
        if ended:
            break
        await asyncio.sleep(api.settings.api_progress_seconds)
        found = await imports_repo.get(api.services.pool, row.workspace_id, row.id)
        assert found is not None
        row = found
    await resp.write_eof()
    return resp


async def cancel_import(request: web.Request) -> web.StreamResponse:
    row = await _import_row(request)
    if row.status != "processing" or not row.workflow_id:
        raise ApiError(409, "not_running", f"import {row.id} is {row.status}; nothing to cancel")
    try:
        await api_of(request).client.get_workflow_handle(row.workflow_id).cancel()
    except RPCError as e:
        raise ApiError(409, "not_running", f"import {row.id}: {e.message}") from None
    return web.json_response(
        {"import_id": row.id, "workflow_id": row.workflow_id, "cancel_requested": True},
        status=202,
    )


# --- exports ------------------------------------------------------------------------


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
    export_id = _id(request, "export")
    try:
        return await exports_repo.find_export(
            api_of(request).services.pool, key_of(request).workspace_id, export_id
        )
    except exports_repo.ExportNotFound:
        raise _not_found("export", export_id) from None


async def create_export(request: web.Request) -> web.StreamResponse:
    api, key = api_of(request), key_of(request)
    body = await _json_body(request)
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


async def cancel_export(request: web.Request) -> web.StreamResponse:
    """Stop a running export; its unfinished file is deleted (folksjobs/exports/cancel.py)."""
    rec = await _export_record(request)
    try:
        await export_cancel.cancel_export(api_of(request).client, api_of(request).services.pool,
                                          rec)  # fmt: skip
    except export_cancel.NotRunning as e:
        raise ApiError(409, "not_running", str(e)) from None
    return web.json_response(
        {"export_id": rec["id"], "workflow_id": export_workflow_id(rec["id"]),
         "cancel_requested": True},
        status=202,
    )  # fmt: skip


async def download_export(request: web.Request) -> web.StreamResponse:
    rec = await _export_record(request)
    if rec["status"] != "completed" or not rec["blob_key"]:
        raise ApiError(409, "not_ready", f"export {rec['id']} is {rec['status']}")
    gone = exports_repo.file_gone(rec, api_of(request).settings.export_retention_hours)
    if gone:
        raise ApiError(410, "gone", gone)
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


# --- events -------------------------------------------------------------------------


async def _require_keys_user(pool: asyncpg.Pool, workspace_id: str, user_id: Any) -> None:
    """A workspace's key deletes only a user of its workspace (owner or member)."""
    try:
        await require_member(pool, workspace_id, str(uuid.UUID(str(user_id))))
    except ValueError:
        return  # not an id: parse_event names the field
    except NotAMember:
        raise ApiError(
            403, "forbidden", f"data.userId: user {user_id} does not belong to the key's workspace"
        ) from None


async def send_event(request: web.Request) -> web.StreamResponse:
    """Any event of the catalog, as `starter dispatch` sends it. An event that belongs to
    a workspace gets the key's: `workspaceId` may be left out, and another one is refused."""
    api, key = api_of(request), key_of(request)
    body = await _json_body(request)
    name, data = body.get("name"), body.get("data", {})
    if not isinstance(name, str):
        raise ApiError(422, "invalid_event", "name: required, a string such as user/signed.up")
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_event", "data: expected a JSON object")
    route = ROUTES.get(name)
    if route is not None and "workspace_id" in route.data.model_fields:
        given = data.setdefault("workspaceId", key.workspace_id)
        if str(given) != key.workspace_id:
            raise ApiError(403, "forbidden", "data.workspaceId: not the key's workspace")
    if name == UserDeleted.NAME:
        await _require_keys_user(api.services.pool, key.workspace_id, data.get("userId"))
    try:
        event = parse_event(name, data)
        # With the pool, dispatch checks the user belongs to the workspace and the record
        # is the workspace's, before anything starts.
        started = await dispatch(api.client, api.settings, event, pool=api.services.pool)
    except EventError as e:
        raise ApiError(422, "invalid_event", str(e)) from None
    except JobDisabled as e:
        raise ApiError(409, "job_disabled", str(e)) from None
    return web.json_response(
        {
            "id": body.get("id"),
            "event": started.event,
            "workflow_id": started.workflow_id,
            "run_id": started.run_id,
            "started": started.started,
        },
        status=202,
    )
