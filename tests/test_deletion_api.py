"""Retention and deletion over HTTP: POST /v1/events for workspace/deleted and
user/deleted (who may send them), an expired export's download (410), export cancel."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.client import Client

from folksjobs.api import keys
from folksjobs.devtools import seed
from folksjobs.exports import repo as exports_repo
from tests.apiserver import ApiServer, ApiTenant
from tests.test_api import call, http
from tests.test_deletion import workspace_rows


async def _service(api: ApiServer, t: ApiTenant) -> ApiTenant:
    """The workspace's service key: what the CRM's backend sends events with."""
    _, secret = await keys.create(api.services.pool, t.workspace_id, "backend", "service")
    return ApiTenant(t.user_id, t.workspace_id, t.key_id, secret)


async def test_workspace_deleted_over_http(api_server: ApiServer) -> None:
    api = api_server
    t, other = await api.tenant(), await api.tenant()
    backend, elsewhere = await _service(api, t), await _service(api, other)
    member = await seed.create_user(api.owner, f"m-{uuid.uuid4().hex[:6]}@example.com")
    await seed.add_member(api.owner, t.workspace_id, member)
    await api.owner.execute(
        "INSERT INTO contacts (workspace_id, email) VALUES ($1::uuid, 'a@example.com')",
        t.workspace_id,
    )
    event = {"name": "workspace/deleted",
             "data": {"workspaceId": t.workspace_id, "userId": t.user_id}}  # fmt: skip
    async with http() as s:
        # A key of another workspace: refused, whatever it names.
        status, body = await call(s, api, "POST", "/v1/events", elsewhere, json=event)
        assert (status, body["error"]) == (403, "forbidden")
        # The owner only.
        not_owner = {"name": "workspace/deleted", "data": {"userId": member}}
        status, body = await call(s, api, "POST", "/v1/events", backend, json=not_owner)
        assert (status, body["error"]) == (422, "invalid_event")
        assert body["detail"] == (
            f"workspace/deleted: user {member} is not the owner of workspace {t.workspace_id}:"
            " only its owner may delete it"
        )
        assert (await workspace_rows(api.owner, t.workspace_id))["contacts"] == 1
        status, body = await call(s, api, "POST", "/v1/events", backend, json=event)
        assert status == 202 and body["workflow_id"] == f"delete-workspace-{t.workspace_id}"
        for _ in range(200):
            if not await workspace_rows(api.owner, t.workspace_id):
                break
            await asyncio.sleep(0.1)
        assert await workspace_rows(api.owner, t.workspace_id) == {}
        # Its keys went with it.
        status, _ = await call(s, api, "GET", f"/v1/exports/{uuid.uuid4()}", t)
        assert status == 401
        # The other workspace's key still works.
        status, _ = await call(s, api, "GET", f"/v1/exports/{uuid.uuid4()}", other)
        assert status == 404


async def test_user_deleted_over_http_only_for_the_keys_people(
    api_server: ApiServer, client: Client
) -> None:
    api = api_server
    t, other = await api.tenant(), await api.tenant()
    backend = await _service(api, t)
    member = await seed.create_user(api.owner, f"m-{uuid.uuid4().hex[:6]}@example.com")
    await seed.add_member(api.owner, t.workspace_id, member)
    async with http() as s:
        stranger = {"name": "user/deleted", "data": {"userId": other.user_id}}
        status, body = await call(s, api, "POST", "/v1/events", backend, json=stranger)
        assert (status, body["error"]) == (403, "forbidden")
        assert body["detail"] == (
            f"data.userId: user {other.user_id} does not belong to the key's workspace"
        )
        mine = {"name": "user/deleted", "data": {"userId": member}}
        status, body = await call(s, api, "POST", "/v1/events", backend, json=mine)
        assert status == 202 and body["workflow_id"] == f"delete-user-{member}"
    result = await client.get_workflow_handle(f"delete-user-{member}").result()
    assert result["memberships_removed"] == 1
    assert (
        await api.owner.fetchval(
            "SELECT count(*) FROM workspace_members WHERE user_id = $1::uuid", member
        )
        == 0
    )
    assert await api.owner.fetchval(
        "SELECT deleted_at IS NULL FROM users WHERE id = $1::uuid", other.user_id
    )


async def _export(s: Any, api: ApiServer, t: ApiTenant) -> dict[str, Any]:
    status, ex = await call(s, api, "POST", "/v1/exports", t, json={})
    assert status == 202
    for _ in range(100):
        _, view = await call(s, api, "GET", f"/v1/exports/{ex['export_id']}", t)
        if view["status"] in ("completed", "failed", "cancelled"):
            return dict(view)
        await asyncio.sleep(0.2)
    raise AssertionError(f"export {ex['export_id']} never ended")


async def test_download_after_expiry_is_gone_with_the_reason(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    async with http() as s:
        view = await _export(s, api, t)
        assert view["status"] == "completed"
        # Past EXPORT_RETENTION_HOURS before the sweep came: already refused.
        await api.owner.execute(
            "UPDATE exports SET completed_at = now() - interval '73 hours' WHERE id = $1::uuid",
            view["export_id"],
        )
        status, body = await call(s, api, "GET", view["download"], t)
        assert (status, body["error"]) == (410, "gone")
        assert body["detail"].startswith(f"the file of export {view['export_id']} expired on ")
        assert "EXPORT_RETENTION_HOURS (72 h)" in body["detail"]
        # Swept: the time it went.
        await api.owner.execute(
            "UPDATE exports SET file_deleted_at = now() WHERE id = $1::uuid", view["export_id"]
        )
        status, body = await call(s, api, "GET", view["download"], t)
        assert (status, body["error"]) == (410, "gone")
        assert f"export {view['export_id']} was deleted on " in body["detail"]
        _, again = await call(s, api, "GET", f"/v1/exports/{view['export_id']}", t)
    assert again["status"] == "completed" and again["row_count"] == view["row_count"]


async def test_cancel_an_export_over_http(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    async with http() as s:
        done = await _export(s, api, t)
        status, body = await call(s, api, "POST", f"/v1/exports/{done['export_id']}/cancel", t)
        assert (status, body["error"]) == (409, "not_running")
        assert body["detail"] == f"export {done['export_id']} is completed; nothing to cancel"
        status, body = await call(s, api, "POST", f"/v1/exports/{uuid.uuid4()}/cancel", t)
        assert status == 404
        # An export whose run is not started (its record only) cannot be held up by one
        # that never comes: cancelled at once.
        pending, _ = await exports_repo.create_export(api.services.pool, t.workspace_id, None, [])
        status, body = await call(s, api, "POST", f"/v1/exports/{pending}/cancel", t)
        assert status == 202 and body["cancel_requested"] is True
        _, view = await call(s, api, "GET", f"/v1/exports/{pending}", t)
    assert view["status"] == "cancelled"
