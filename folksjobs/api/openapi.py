"""The OpenAPI 3 document served at /openapi.json (a test checks it against the router).

Event data schemas come from the event catalog's models, so they cannot drift from what
`POST /v1/events` validates.
"""

from __future__ import annotations

from typing import Any

from folksjobs.events import ROUTES

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _refusals(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "malformed request",
        401: "no key, or an unknown or revoked key",
        403: "a service key on a workspace route, or another workspace in the data",
        404: "no such object in the key's workspace",
        408: "the body did not arrive within API_READ_TIMEOUT_SECONDS",
        409: "the object is not in a state that allows this",
        410: "the file is no longer stored",
        413: "more bytes than the limit",
        415: "not CSV (binary content) or an unsupported content type",
        422: "invalid input; detail names the field",
        429: "too many uploads at once for this key",
        503: "a dependency does not answer",
    }
    return {str(c): {"description": reasons[c], **_json(_ERROR)} for c in codes}


_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_AUTH = (401, 403, 404)


def _op(
    summary: str, ok: int, ok_schema: dict[str, Any] | None, *codes: int, **extra: Any
) -> dict[str, Any]:
    ok_resp: dict[str, Any] = {"description": summary}
    if ok_schema is not None:
        ok_resp |= _json(ok_schema)
    return {"summary": summary, "responses": {str(ok): ok_resp, **_refusals(*codes)}, **extra}


_OBJ = {"type": "object"}


def document() -> dict[str, Any]:
    events = {name: route.data.model_json_schema(by_alias=True) for name, route in ROUTES.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "folksjobs API", "version": "1"},
        "components": {
            "securitySchemes": {"key": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
                },
                # Named as docs/schemas names them: event.import.csv.confirmed.
                **{f"event.{n.replace('/', '.')}": s for n, s in events.items()},
            },
        },
        "security": [{"key": []}],
        "paths": {
            "/healthz": {"get": _op("the process is up", 200, _OBJ, security=[])},
            "/readyz": {
                "get": _op(
                    "PostgreSQL, Redis, Temporal and the blob store answer",
                    200,
                    _OBJ,
                    503,
                    security=[],
                )
            },
            "/v1/imports": {
                "post": _op(
                    "upload a CSV (multipart `file` [+ `encoding`], or a text/csv body with "
                    "?filename=); returns the preview and suggested mapping",
                    201,
                    _OBJ,
                    *_AUTH,
                    408,
                    413,
                    415,
                    422,
                    429,
                    parameters=[{"name": "filename", "in": "query", "schema": {"type": "string"}}],
                    requestBody={
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary"},
                                        "encoding": {"type": "string"},
                                    },
                                }
                            },
                            "text/csv": {"schema": {"type": "string"}},
                        }
                    },
                )
            },
            "/v1/imports/{id}": {
                "get": _op(
                    "status, counts, avatars done/pending, error samples, AI summary, UI link",
                    200,
                    _OBJ,
                    *_AUTH,
                    parameters=[_ID],
                )
            },
            "/v1/imports/{id}/mapping": {
                "put": _op(
                    "change the mapping of a pending import: {mapping: {header: field}}",
                    200,
                    _OBJ,
                    *_AUTH,
                    409,
                    413,
                    422,
                    parameters=[_ID],
                    requestBody=_json({"type": "object", "properties": {"mapping": _OBJ}}),
                )
            },
            "/v1/imports/{id}/confirm": {
                "post": _op(
                    "start the import (event import/csv.confirmed)",
                    202,
                    _OBJ,
                    *_AUTH,
                    409,
                    422,
                    parameters=[_ID],
                )
            },
            "/v1/imports/{id}/events": {
                "get": {
                    **_op(
                        "progress as server-sent events until the import ends (`end`)",
                        200,
                        None,
                        *_AUTH,
                        parameters=[_ID],
                    ),
                    "x-content-type": "text/event-stream",
                }
            },
            "/v1/imports/{id}/cancel": {
                "post": _op("cancel a running import", 202, _OBJ, *_AUTH, 409, parameters=[_ID])
            },
            "/v1/exports": {
                "post": _op(
                    "export the workspace's contacts; with `tags` (names) or `tag_ids`, "
                    "those carrying ANY of them",
                    202,
                    _OBJ,
                    *_AUTH,
                    409,
                    413,
                    422,
                    requestBody=_json(
                        {
                            "type": "object",
                            "properties": {
                                "tags": {"type": "array", "items": {"type": "string"}},
                                "tag_ids": {
                                    "type": "array",
                                    "items": {"type": "string", "format": "uuid"},
                                },
                            },
                        }
                    ),
                )
            },
            "/v1/exports/{id}": {
                "get": _op("an export's status and counts", 200, _OBJ, *_AUTH, parameters=[_ID])
            },
            "/v1/exports/{id}/download": {
                "get": {
                    **_op("the exported CSV", 200, None, *_AUTH, 409, 410, parameters=[_ID]),
                    "x-content-type": "text/csv",
                }
            },
            "/v1/exports/{id}/cancel": {
                "post": _op(
                    "cancel a running export (its unfinished file is deleted)",
                    202,
                    _OBJ,
                    *_AUTH,
                    409,
                    parameters=[_ID],
                )
            },
            "/v1/events": {
                "post": _op(
                    "send an event of the catalog; the workspace is the key's",
                    202,
                    _OBJ,
                    401,
                    403,
                    409,
                    413,
                    422,
                    requestBody=_json(
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {
                                "name": {"enum": sorted(events)},
                                "data": _OBJ,
                                "id": {"type": "string"},
                            },
                        }
                    ),
                )
            },
        },
    }
