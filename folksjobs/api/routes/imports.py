"""/v1/imports: upload, mapping, confirm, progress events, cancel."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp import BodyPartReader, web
from temporalio.service import RPCError

from folksjobs import confirm, tenancy
from folksjobs.api.context import ApiError, api_of, key_of
from folksjobs.api.routes.common import json_body, not_found, path_id
from folksjobs.catalog import JobDisabled
from folksjobs.imports import avatars as avatars_repo
from folksjobs.imports import lifecycle
from folksjobs.imports import repo as imports_repo
from folksjobs.imports.mapping import (
    FIELDS,
    MappingError,
    apply_overrides,
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
from folksjobs.infra.ui import run_link
from folksjobs.models import import_workflow_id

ENDED = ("completed", "failed", "cancelled")
# Pieces handed to the parser's thread: one loop hop per piece, not per TCP read.
PIECE_BYTES = 256 * 1024
# A comment line this often keeps proxies from closing a quiet progress stream.
KEEPALIVE_SECONDS = 15.0
# A multipart body is the file plus its boundaries and part headers: a declared length may
# exceed the file limit by this much before it is refused unread.
FORM_OVERHEAD_BYTES = 64 * 1024
QUERY_TIMEOUT = timedelta(seconds=2)


async def _import_row(request: web.Request) -> ImportRow:
    import_id = path_id(request, "import")
    row = await imports_repo.get(
        api_of(request).services.pool, key_of(request).workspace_id, import_id
    )
    if row is None:
        raise not_found("import", import_id)
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


async def _avatars(request: web.Request, row: ImportRow) -> dict[str, int] | None:
    """Avatars done and still owed (the avatars job fills them in after the contacts are
    committed, so they may still be arriving after the import completed). None: Gravatar
    is off."""
    if not api_of(request).settings.gravatar_enabled:
        return None
    owed = await avatars_repo.owed_count(api_of(request).services.pool, row.workspace_id, row.id)
    contacts = row.inserted_rows + row.updated_rows + row.unchanged_rows
    return {"done": max(0, contacts - owed), "pending": owed}


async def _full_view(request: web.Request, row: ImportRow) -> dict[str, Any]:
    return _import_view(request, row) | {"avatars": await _avatars(request, row)}


def _counts(row: ImportRow) -> dict[str, int]:
    return {
        "processed": row.processed_rows,
        "inserted": row.inserted_rows,
        "updated": row.updated_rows,
        "unchanged": row.unchanged_rows,
        "failed": row.failed_rows,
        "duplicates": row.duplicate_rows,
    }


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
            "fields": FIELDS,
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
    owner = await tenancy.workspace_owner(api.services.pool, key.workspace_id)
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
    return web.json_response(await _full_view(request, await _import_row(request)))


async def set_mapping(request: web.Request) -> web.StreamResponse:
    row = await _import_row(request)
    body = await json_body(request)
    chosen = body.get("mapping")
    if not isinstance(chosen, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in chosen.items()
    ):
        raise ApiError(422, "invalid_body", 'mapping: expected {"<header>": "<field>", ...}')
    try:
        mapping = apply_overrides(
            row.headers, row.column_mapping, [f"{h}={f}" for h, f in chosen.items()]
        )
        saved = await lifecycle.save_mapping(
            api_of(request).services.pool, row.workspace_id, row.id, mapping
        )
    except MappingError as e:
        raise ApiError(422, "invalid_mapping", str(e)) from None
    if saved is None:
        raise ApiError(409, "not_pending", f"import {row.id} is {row.status}; it was confirmed")
    return web.json_response({"import_id": row.id, "headers": row.headers, "mapping": mapping})


async def confirm_import(request: web.Request) -> web.StreamResponse:
    row = await _import_row(request)
    api = api_of(request)
    try:
        handle = await confirm.confirm_import(
            api.client, api.services.pool, api.settings, row.workspace_id, row.id, record=row
        )
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
        data = await _full_view(request, row) | {"stage": await _stage(request, row)}
        owed = (data["avatars"] or {}).get("pending", 0)
        event_id = f"{row.status}-{row.processed_rows}-{data['stage']}-{owed}"
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
    if row.status not in ("pending", "processing"):
        raise ApiError(409, "not_running", f"import {row.id} is {row.status}; nothing to cancel")
    # Pending: confirmed a moment ago, its run not yet at claim-import; or never confirmed,
    # and then there is no run to cancel.
    wid = row.workflow_id or import_workflow_id(row.id)
    try:
        await api_of(request).client.get_workflow_handle(wid).cancel()
    except RPCError as e:
        raise ApiError(409, "not_running", f"import {row.id}: {e.message}") from None
    return web.json_response(
        {"import_id": row.id, "workflow_id": wid, "cancel_requested": True},
        status=202,
    )
