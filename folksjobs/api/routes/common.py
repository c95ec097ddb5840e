"""What every route shares: ids from the path, JSON bodies, the 404 of an unknown id."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web

from folksjobs.api.context import ApiError


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(404, "not_found", f"no {kind} {ident}")


def path_id(request: web.Request, kind: str) -> str:
    raw = request.match_info["id"]
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise not_found(kind, raw) from None


async def json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except json.JSONDecodeError as e:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "the body must be a JSON object")
    return body
