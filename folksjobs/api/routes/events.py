"""/v1/events: any catalog event, dispatched as its job."""

from __future__ import annotations

from aiohttp import web

from folksjobs.api.context import ApiError, api_of, key_of
from folksjobs.api.routes.common import json_body
from folksjobs.catalog import JobDisabled
from folksjobs.events import ROUTES, EventError, dispatch, parse_event


async def send_event(request: web.Request) -> web.StreamResponse:
    """Any event of the catalog, as `starter dispatch` sends it. An event that belongs to
    a workspace gets the key's: `workspaceId` may be left out, and another one is refused."""
    api, key = api_of(request), key_of(request)
    body = await json_body(request)
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
