"""The HTTP API against a real running server and the real stack: every route, every
refusal (with its status), keys, and two workspaces side by side."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from openapi_spec_validator import validate

from folksjobs.api import keys
from folksjobs.api.app import build_app
from folksjobs.api.openapi import document
from folksjobs.devtools.devstack import free_port
from folksjobs.exports import repo as exports_repo
from folksjobs.infra import rediskeys
from folksjobs.settings import ROOT
from tests.apiserver import UPLOAD_LIMIT, ApiServer, ApiTenant
from tests.importing import csv_bytes

ROWS = [["E-mail", "First Name", "Org"]] + [
    [f"person{i}@example.com", f"P{i}", f"Org{i % 3}"] for i in range(450)
]
CSV = csv_bytes(ROWS)


@asynccontextmanager
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def call(
    s: aiohttp.ClientSession,
    api: ApiServer,
    method: str,
    path: str,
    t: ApiTenant | None,
    **kw: Any,
) -> tuple[int, Any]:
    headers = {**(t.auth if t else {}), **kw.pop("headers", {})}
    async with s.request(method, api.url + path, headers=headers, **kw) as r:
        body = await r.read()
        ctype = r.headers.get("Content-Type", "")
        return r.status, json.loads(body) if ctype.startswith("application/json") else body


def form(data: bytes, name: str = "contacts.csv") -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("file", data, filename=name, content_type="text/csv")
    return f


async def imports_of(api: ApiServer, workspace_id: str) -> int:
    return int(
        await api.owner.fetchval(
            "SELECT count(*) FROM imports WHERE workspace_id = $1::uuid", workspace_id
        )
    )


def blobs_of(api: ApiServer, workspace_id: str) -> list[Path]:
    folder = Path(api.settings.blob_url) / "imports" / workspace_id
    return [p for p in folder.iterdir()] if folder.exists() else []


async def events(
    s: aiohttp.ClientSession,
    api: ApiServer,
    t: ApiTenant,
    import_id: str,
    last_id: str | None = None,
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every (id, event, data) of the progress stream until the server ends it."""
    headers = {**t.auth, **({"Last-Event-ID": last_id} if last_id else {})}
    out: list[tuple[str, str, dict[str, Any]]] = []
    url = f"{api.url}/v1/imports/{import_id}/events"
    async with s.get(url, headers=headers, timeout=aiohttp.ClientTimeout(60)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "text/event-stream"
        frame: dict[str, str] = {}
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if not line:
                if "data" in frame:
                    out.append((frame["id"], frame["event"], json.loads(frame["data"])))
                frame = {}
            elif not line.startswith(":"):
                k, _, v = line.partition(": ")
                frame[k] = v
    return out


async def raw_request(
    api: ApiServer, head: str, body_parts: list[bytes], pause: float = 0.0
) -> tuple[int, dict[str, Any]]:
    """An HTTP/1.1 request written by hand (chunked bodies, lying lengths, slow senders);
    the answer is read while the body is still being sent."""
    u = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)

    async def send() -> None:
        try:
            writer.write(head.encode())
            for part in body_parts:
                writer.write(part)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    try:
        status_line = await asyncio.wait_for(reader.readline(), 30)
        headers = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(h.split(b":")[1])
            for h in headers.split(b"\r\n")
            if h.lower().startswith(b"content-length")
        )
        body = await reader.readexactly(length)
    finally:
        sender.cancel()
        writer.close()
    return int(status_line.split()[1]), json.loads(body)


def chunked(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    parts = [
        b"%x\r\n%s\r\n" % (len(data[i : i + size]), data[i : i + size])
        for i in range(0, len(data), size)
    ]
    return [*parts, b"0\r\n\r\n"]


def upload_head(t: ApiTenant, extra: str) -> str:
    return (
        "POST /v1/imports?filename=big.csv HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        f"Authorization: Bearer {t.key}\r\n{extra}\r\n"
    )


def big_csv(size: int) -> bytes:
    rows = [["email"]] + [[f"someone{i}@example.com"] for i in range(size // 20)]
    data = csv_bytes(rows)
    assert len(data) > size
    return data


# --- the document and health ----------------------------------------------------------


def test_openapi_document_lists_exactly_the_routes(api_server: ApiServer) -> None:
    app = build_app(api_server.settings, api_server.services, None)  # type: ignore[arg-type]
    served = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    doc = document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops} | {
        ("get", "/"),
        ("get", "/openapi.json"),
    }
    assert served == documented
    validate(doc)  # a valid OpenAPI 3.1 document


async def test_health_ready_console_and_openapi(api_server: ApiServer) -> None:
    async with http() as s:
        assert await call(s, api_server, "GET", "/healthz", None) == (200, {"status": "ok"})
        status, body = await call(s, api_server, "GET", "/readyz", None)
        assert (status, body["checks"]) == (200, ["blob", "postgres", "redis", "temporal"])
        status, page = await call(s, api_server, "GET", "/", None)
        assert status == 200 and b"<title>folksjobs console</title>" in page
        status, doc = await call(s, api_server, "GET", "/openapi.json", None)
        assert status == 200 and doc["openapi"].startswith("3.")


# --- the import, end to end -----------------------------------------------------------


async def test_upload_map_confirm_stream_and_summary(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    async with http() as s:
        status, up = await call(s, api, "POST", "/v1/imports", t, data=form(CSV, "c.csv"))
        assert status == 201, up
        assert up["status"] == "pending"
        assert (up["total_rows"], up["headers"]) == (450, ["E-mail", "First Name", "Org"])
        assert up["mapping"] == ["email", "first_name", "custom:Org"]
        assert up["preview"][0] == ["person0@example.com", "P0", "Org0"]
        assert len(up["preview"]) == api.settings.preview_rows
        assert (up["delimiter"], up["encoding"]) == (",", "utf-8")
        iid = up["import_id"]

        status, m = await call(
            s, api, "PUT", f"/v1/imports/{iid}/mapping", t, json={"mapping": {"Org": "company"}}
        )
        assert status == 200 and m["mapping"] == ["email", "first_name", "company"]
        status, bad = await call(
            s, api, "PUT", f"/v1/imports/{iid}/mapping", t, json={"mapping": {"E-mail": "skip"}}
        )
        assert (status, bad["error"]) == (422, "invalid_mapping")
        assert "no column is mapped to email" in bad["detail"]
        status, bad = await call(
            s, api, "PUT", f"/v1/imports/{iid}/mapping", t, json={"mapping": {"Org": "nope"}}
        )
        assert (status, bad["error"]) == (422, "invalid_mapping")
        assert "column 'Org': unknown field 'nope'; use one of email" in bad["detail"]
        # The API's refusals speak of its own body, not of the CLI's flag.
        assert "--map" not in bad["detail"]

        status, started = await call(s, api, "POST", f"/v1/imports/{iid}/confirm", t)
        assert status == 202 and started["workflow_id"] == f"import-{iid}"
        # A repeated confirmation is the same run.
        assert (await call(s, api, "POST", f"/v1/imports/{iid}/confirm", t))[1][
            "workflow_id"
        ] == started["workflow_id"]

        stream = await events(s, api, t, iid)
        assert [e for _, e, _ in stream].count("end") == 1 and stream[-1][1] == "end"
        final = stream[-1][2]
        assert final["status"] == "completed"
        assert final["counts"] == {
            "processed": 450,
            "inserted": 450,
            "updated": 0,
            "unchanged": 0,
            "failed": 0,
            "duplicates": 0,
        }
        # Reconnecting with the last id loses nothing: the end event again, final counts.
        again = await events(s, api, t, iid, last_id=stream[-1][0])
        assert [(e, d["counts"]) for _, e, d in again] == [("end", final["counts"])]

        status, view = await call(s, api, "GET", f"/v1/imports/{iid}", t)
        assert status == 200
        assert view["status"] == "completed" and view["counts"] == final["counts"]
        assert view["ai_summary"] and view["ui"].endswith(f"/workflows/import-{iid}")
        assert view["mapping"] == ["email", "first_name", "company"]
        status, late = await call(
            s, api, "PUT", f"/v1/imports/{iid}/mapping", t, json={"mapping": {"Org": "skip"}}
        )
        assert (status, late["error"]) == (409, "not_pending")
        status, nope = await call(s, api, "POST", f"/v1/imports/{iid}/cancel", t)
        assert (status, nope["error"]) == (409, "not_running")
    companies = await api.owner.fetchval(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid AND company LIKE 'Org%'",
        t.workspace_id,
    )
    assert companies == 450


async def test_raw_csv_body_and_a_cleaned_filename(api_server: ApiServer) -> None:
    t = await api_server.tenant()
    name = "..\\..\\evil/dir/<script>\x07con;tacts.csv"
    async with http() as s:
        status, up = await call(
            s,
            api_server,
            "POST",
            "/v1/imports",
            t,
            data=CSV,
            params={"filename": name},
            headers={"Content-Type": "text/csv"},
        )
    assert status == 201 and up["total_rows"] == 450
    assert up["file_name"] == "scriptcontacts.csv"


async def test_cancel_a_running_import(api_server: ApiServer) -> None:
    t = await api_server.tenant()
    data = csv_bytes([["email"]] + [[f"c{i}@example.com"] for i in range(20_000)])
    async with http() as s:
        _, up = await call(s, api_server, "POST", "/v1/imports", t, data=form(data))
        iid = up["import_id"]
        await call(s, api_server, "POST", f"/v1/imports/{iid}/confirm", t)
        status, c = await call(s, api_server, "POST", f"/v1/imports/{iid}/cancel", t)
        assert (status, c["cancel_requested"]) == (202, True)
        final = (await events(s, api_server, t, iid))[-1]
    assert (final[1], final[2]["status"]) == ("end", "cancelled")


# --- refusals ---------------------------------------------------------------------------


async def test_refusals_store_nothing(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    async with http() as s:
        for data, error in [
            (b"PK\x03\x04" + b"\x00" * 200, "not_csv"),
            (b"email\nab\x00cd@example.com\n", "not_csv"),
        ]:
            status, body = await call(s, api, "POST", "/v1/imports", t, data=form(data))
            assert (status, body["error"]) == (415, error)
            assert "not a CSV text file" in body["detail"]
        status, body = await call(s, api, "POST", "/v1/imports", t, data=form(b""))
        assert (status, body["error"]) == (422, "invalid_csv")
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/imports",
            t,
            data=b"{}",
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["error"]) == (415, "unsupported_media_type")
        f = aiohttp.FormData(default_to_multipart=True)
        f.add_field("other", "x")
        status, body = await call(s, api, "POST", "/v1/imports", t, data=f)
        assert (status, body["error"]) == (422, "missing_file")
        f = aiohttp.FormData()
        f.add_field("encoding", "ebcdic")
        f.add_field("file", CSV, filename="c.csv")
        status, body = await call(s, api, "POST", "/v1/imports", t, data=f)
        assert (status, body["error"]) == (422, "invalid_csv") and "ebcdic" in body["detail"]
        # Over the limit in a multipart body (no length of its own): counted as read.
        status, body = await call(
            s, api, "POST", "/v1/imports", t, data=form(big_csv(UPLOAD_LIMIT + 1))
        )
        assert (status, body["error"]) == (413, "too_large")
        # A JSON body larger than API_MAX_JSON_BYTES.
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/events",
            t,
            json={"name": "user/signed.up", "data": {"x": "y" * 5000}},
        )
        assert (status, body["error"]) == (413, "body_too_large")
    # Chunked: no length announced, the limit is counted on the bytes read.
    status, body = await raw_request(
        api, upload_head(t, "Transfer-Encoding: chunked\r\n"), chunked(big_csv(UPLOAD_LIMIT * 2))
    )
    assert (status, body["error"]) == (413, "too_large")
    # A declared length over the limit is refused before a byte of the body is read.
    status, body = await raw_request(
        api, upload_head(t, f"Content-Length: {UPLOAD_LIMIT * 3}\r\n"), [b"email\n"]
    )
    assert (status, body["error"]) == (413, "too_large")
    # A multipart part that lies about its own length: counted on the bytes read.
    data = big_csv(UPLOAD_LIMIT + 1)
    boundary = "b0undary"
    body_bytes = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, body = await raw_request(
        api,
        "POST /v1/imports HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Authorization: Bearer {t.key}\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked(body_bytes),
    )
    assert (status, body["error"]) == (413, "too_large")
    # A slow client: one small piece every half second, past the 2 s body deadline.
    status, body = await raw_request(
        api,
        upload_head(t, "Transfer-Encoding: chunked\r\n"),
        chunked(b"email\n" + b"a@example.com\n" * 20, size=14),
        pause=0.5,
    )
    assert (status, body["error"]) == (408, "request_timeout")
    assert await imports_of(api, t.workspace_id) == 0
    assert blobs_of(api, t.workspace_id) == []


async def test_too_large_headers_are_refused(api_server: ApiServer) -> None:
    t = await api_server.tenant()
    async with http() as s:
        status, _ = await call(s, api_server, "GET", "/healthz", t, headers={"X-Big": "x" * 10_000})
    assert status in (400, 431)


async def test_uploads_at_once_per_key(api_server: ApiServer) -> None:
    """Two slow uploads hold the key's two slots: a third is 429, nothing of it stored."""
    api = api_server
    t = await api.tenant()
    u = urlsplit(api.url)
    held = []
    for _ in range(2):
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        writer.write(upload_head(t, "Transfer-Encoding: chunked\r\n").encode())
        writer.write(chunked(b"email\n")[0])
        await writer.drain()
        held.append((reader, writer))
    for _ in range(200):  # until the server has taken both slots
        if await api.services.redis.zcard(rediskeys.api_uploads(t.key_id)) == 2:
            break
        await asyncio.sleep(0.05)
    async with http() as s:
        status, body = await call(s, api, "POST", "/v1/imports", t, data=form(CSV))
        assert (status, body["error"]) == (429, "too_many_uploads")
        other = await api.tenant()
        status, _ = await call(s, api, "POST", "/v1/imports", other, data=form(CSV))
        assert status == 201
    for _, writer in held:
        writer.close()
    assert await imports_of(api, t.workspace_id) == 0
    # The slots come back when the uploads end (here: their clients went away).
    for _ in range(200):
        if await api.services.redis.zcard(rediskeys.api_uploads(t.key_id)) == 0:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the upload slots were not given back")


# --- keys ---------------------------------------------------------------------------------


async def test_keys_no_wrong_revoked_and_service(
    api_server: ApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    api = api_server
    t = await api.tenant()
    caplog.set_level(logging.DEBUG)
    async with http() as s:
        status, body = await call(s, api, "GET", "/v1/imports/" + str(uuid.uuid4()), None)
        assert (status, body["error"]) == (401, "unauthorized")
        for bad in ("fj_" + "x" * 43, "nonsense", t.key + "x"):
            status, _ = await call(
                s,
                api,
                "GET",
                "/v1/exports/" + str(uuid.uuid4()),
                None,
                headers={"Authorization": f"Bearer {bad}"},
            )
            assert status == 401
        status, _ = await call(s, api, "POST", "/v1/imports", t, data=form(CSV))
        assert status == 201
        await keys.revoke(api.owner, t.key_id)
        status, body = await call(s, api, "POST", "/v1/imports", t, data=form(CSV))
        assert (status, body["detail"]) == (401, "the API key is unknown or revoked")

        svc_key, secret = await keys.create(api.services.pool, t.workspace_id, "crm", "service")
        svc = ApiTenant(t.user_id, t.workspace_id, svc_key.id, secret)
        status, body = await call(s, api, "POST", "/v1/imports", svc, data=form(CSV))
        assert (status, body["error"]) == (403, "forbidden")
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/events",
            svc,
            json={"name": "user/signed.up", "data": {"userId": str(uuid.uuid4())}},
        )
        assert status == 202
    listed = {k.id: k for k in await keys.list_keys(api.owner, t.workspace_id)}
    assert listed[t.key_id].revoked_at is not None and listed[svc_key.id].kind == "service"
    assert t.key not in caplog.text and secret not in caplog.text
    assert await imports_of(api, t.workspace_id) == 1


async def test_two_workspaces_side_by_side(api_server: ApiServer) -> None:
    """Each workspace sees its own objects; the other's ids answer 404 like missing ones."""
    api = api_server
    a, b = await api.tenant("A"), await api.tenant("B")
    async with http() as s:
        ups = await asyncio.gather(
            call(s, api, "POST", "/v1/imports", a, data=form(CSV)),
            call(s, api, "POST", "/v1/imports", b, data=form(csv_bytes(ROWS[:101]))),
        )
        ia, ib = (u[1]["import_id"] for u in ups)
        await asyncio.gather(
            call(s, api, "POST", f"/v1/imports/{ia}/confirm", a),
            call(s, api, "POST", f"/v1/imports/{ib}/confirm", b),
        )
        ends = await asyncio.gather(events(s, api, a, ia), events(s, api, b, ib))
        assert [e[-1][2]["counts"]["inserted"] for e in ends] == [450, 100]
        _, ea = await call(s, api, "POST", "/v1/exports", a, json={})
        missing = str(uuid.uuid4())
        for path, method in [
            (f"/v1/imports/{ia}", "GET"),
            (f"/v1/imports/{ia}/events", "GET"),
            (f"/v1/imports/{ia}/confirm", "POST"),
            (f"/v1/imports/{ia}/cancel", "POST"),
            (f"/v1/exports/{ea['export_id']}", "GET"),
            (f"/v1/exports/{ea['export_id']}/download", "GET"),
        ]:
            foreign = await call(s, api, method, path, b)
            absent = await call(
                s, api, method, path.replace(ia, missing).replace(ea["export_id"], missing), b
            )
            assert foreign[0] == absent[0] == 404, path
            assert foreign[1]["error"] == absent[1]["error"] == "not_found"
        status, body = await call(
            s, api, "PUT", f"/v1/imports/{ia}/mapping", b, json={"mapping": {"Org": "skip"}}
        )
        assert (status, body["error"]) == (404, "not_found")
        status, _ = await call(s, api, "GET", "/v1/imports/not-a-uuid", b)
        assert status == 404
    counts = {
        w: await api.owner.fetchval(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid", w
        )
        for w in (a.workspace_id, b.workspace_id)
    }
    assert counts == {a.workspace_id: 450, b.workspace_id: 100}


# --- exports and events -------------------------------------------------------------------


async def test_export_with_a_tag_filter_and_download(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    async with http() as s:
        _, up = await call(s, api, "POST", "/v1/imports", t, data=form(CSV))
        await call(s, api, "POST", f"/v1/imports/{up['import_id']}/confirm", t)
        await events(s, api, t, up["import_id"])
        tag = await api.owner.fetchval(
            "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2::uuid, 'vip') RETURNING id",
            uuid.uuid4(),
            t.workspace_id,
        )
        await api.owner.execute(
            "INSERT INTO contact_tags (workspace_id, contact_id, tag_id) SELECT workspace_id, id,"
            " $2 FROM contacts WHERE workspace_id = $1::uuid AND email LIKE 'person1%'",
            t.workspace_id,
            tag,
        )
        status, body = await call(s, api, "POST", "/v1/exports", t, json={"tags": ["nope"]})
        assert (status, body["error"]) == (422, "invalid_export")
        status, body = await call(s, api, "POST", "/v1/exports", t, json={"tags": "vip"})
        assert (status, body["error"]) == (422, "invalid_body")
        status, body = await call(
            s, api, "POST", "/v1/exports", t, json={"tag_ids": [str(uuid.uuid4())]}
        )
        assert (status, body["error"]) == (422, "invalid_export") and "tag_ids" in body["detail"]
        status, ex = await call(s, api, "POST", "/v1/exports", t, json={"tag_ids": [str(tag)]})
        assert status == 202
        eid = ex["export_id"]
        for _ in range(100):
            _, view = await call(s, api, "GET", f"/v1/exports/{eid}", t)
            if view["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.2)
        assert view["status"] == "completed" and view["tags"] == ["vip"]
        # A pending export (its record only, no run) has nothing to download yet.
        pending, _ = await exports_repo.create_export(api.services.pool, t.workspace_id, None, [])
        status, early = await call(s, api, "GET", f"/v1/exports/{pending}/download", t)
        assert (status, early["error"]) == (409, "not_ready")
        status, data = await call(s, api, "GET", view["download"], t)
    assert status == 200
    lines = data.decode().splitlines()
    # person1, person10-19, person100-199: 111 contacts carry the tag.
    assert len(lines) == 1 + 111 == 1 + view["row_count"]
    assert lines[0].startswith("email,first_name")


async def test_events_validated_deduplicated_and_scoped(api_server: ApiServer) -> None:
    api = api_server
    t = await api.tenant()
    user = str(uuid.uuid4())
    await api.owner.execute(
        "INSERT INTO users (id, email, name) VALUES ($1::uuid, $2, 'New')",
        user,
        f"new-{user[:8]}@example.com",
    )
    event = {"name": "user/signed.up", "data": {"userId": user}, "id": "evt-1"}
    async with http() as s:
        first = await call(s, api, "POST", "/v1/events", t, json=event)
        second = await call(s, api, "POST", "/v1/events", t, json=event)
        assert first[0] == second[0] == 202
        assert first[1]["workflow_id"] == second[1]["workflow_id"] == f"welcome-{user}"
        assert first[1]["run_id"] == second[1]["run_id"]
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/events",
            t,
            json={"name": "user/signed.up", "data": {"userId": "x"}},
        )
        assert (status, body["error"]) == (422, "invalid_event") and "userId" in body["detail"]
        status, body = await call(s, api, "POST", "/v1/events", t, json={"name": "no/such"})
        assert status == 422 and "unknown event" in body["detail"]
        other = str(uuid.uuid4())
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/events",
            t,
            json={
                "name": "export/csv.confirmed",
                "data": {"exportId": other, "userId": user, "workspaceId": other},
            },
        )
        assert (status, body["error"]) == (403, "forbidden")
        assert "workspaceId" in body["detail"]
        status, body = await call(
            s,
            api,
            "POST",
            "/v1/events",
            t,
            data=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert (status, body["error"]) == (400, "invalid_json")


# --- the commands ---------------------------------------------------------------------------


def _starter(api: ApiServer, *args: str, **env: str) -> subprocess.Popen[str]:
    s = api.settings
    environ = {
        **os.environ, "TEMPORAL_ADDRESS": s.temporal_address, "BLOB_URL": s.blob_url,
        "DATABASE_URL": s.database_url or "", "REDIS_URL": s.redis_url or "", **env,
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "starter", *args], cwd=ROOT, env=environ, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def _run(api: ApiServer, *args: str) -> tuple[int, str, str]:
    proc = _starter(api, *args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


async def test_api_key_commands_and_the_api_command(api_server: ApiServer) -> None:
    """`starter api-key create|list|revoke`, and `starter api` serving until SIGTERM."""
    api = api_server
    t = await api.tenant()
    code, out, _ = await asyncio.to_thread(
        _run, api, "api-key", "create", "--workspace", t.workspace_id, "--service", "--json"
    )
    created = json.loads(out)
    assert code == 0 and created["kind"] == "service" and created["key"].startswith("fj_")
    code, out, _ = await asyncio.to_thread(
        _run, api, "api-key", "list", "--workspace", t.workspace_id, "--json"
    )
    listed = json.loads(out)["keys"]
    assert {k["id"] for k in listed} == {t.key_id, created["id"]}
    assert created["key"] not in out and all("key" not in k for k in listed)
    code, out, _ = await asyncio.to_thread(_run, api, "api-key", "revoke", created["id"])
    assert code == 0 and created["id"] in out
    with pytest.raises(keys.UnknownKey, match="does not exist"):
        await keys.create(api.services.pool, str(uuid.uuid4()))

    port = free_port()
    proc = _starter(api, "api", API_BIND=f"127.0.0.1:{port}")
    try:
        async with http() as s:
            for _ in range(200):
                try:
                    async with s.get(f"http://127.0.0.1:{port}/readyz") as r:
                        assert r.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("starter api did not answer")
            async with s.get(f"http://127.0.0.1:{port}/v1/imports/{uuid.uuid4()}",
                             headers=t.auth) as r:  # fmt: skip
                assert r.status == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(proc.communicate, timeout=60)
    assert proc.returncode == 0, err
    assert t.key not in err
