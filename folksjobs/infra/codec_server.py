"""The remote codec endpoint: the Temporal UI and CLI send encrypted payloads here and
get them back readable, if they hold the token.

Temporal's remote-codec protocol: `POST /decode` (and `/encode`) with the JSON form of
`temporal.api.common.v1.Payloads`, `{"payloads": [{"metadata": {...}, "data": "<b64>"}]}`,
answered in the same form. Browsers first send a CORS preflight (`OPTIONS`, no
credentials); only origins named in the settings get the CORS headers back.

    python -m starter codec-server           # CODEC_SERVER_BIND, CODEC_SERVER_AUTH_TOKEN
    temporal workflow show -w ID --codec-endpoint http://127.0.0.1:8081 \\
        --codec-auth "Bearer $CODEC_SERVER_AUTH_TOKEN"
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from folksjobs.infra.codec import CodecKeyError, EncryptionCodec
from folksjobs.settings import Settings

log = logging.getLogger("folksjobs.infra.codec_server")

ALLOWED_HEADERS = "authorization,content-type,x-namespace"
CodecFn = Callable[[Sequence[Payload]], Awaitable[list[Payload]]]


def cors_origins(settings: Settings) -> set[str]:
    configured = [o.strip().rstrip("/") for o in settings.codec_server_cors_origins.split(",")]
    origins = {o for o in configured if o}
    if not origins:
        ui = urlsplit(settings.temporal_ui_url)
        origins = {f"{ui.scheme}://{ui.netloc}"}
    return origins


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_app(codec: EncryptionCodec, *, origins: set[str], token: str | None) -> web.Application:
    def cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin and origin.rstrip("/") in origins:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "POST, OPTIONS"
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = ALLOWED_HEADERS
            # The UI's "include cross-origin credentials" option needs this.
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
            response.headers[hdrs.VARY] = "Origin"

    def authorised(request: web.Request) -> bool:
        if token is None:
            return True
        given = request.headers.get(hdrs.AUTHORIZATION, "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def preflight(request: web.Request) -> web.Response:
        response = web.Response(status=204)
        cors(request, response)
        return response

    def endpoint(fn: CodecFn) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            if not authorised(request):
                response = web.json_response({"error": "missing or wrong bearer token"},
                                             status=401)  # fmt: skip
            else:
                response = await apply(request, fn)
            cors(request, response)
            return response

        return handle

    async def apply(request: web.Request, fn: CodecFn) -> web.Response:
        if request.content_type != "application/json":
            return web.json_response({"error": "send application/json"}, status=415)
        try:
            payloads = json_format.Parse(await request.read(), Payloads())
        except json_format.ParseError as e:
            return web.json_response({"error": f"not a Payloads JSON object: {e}"}, status=400)
        try:
            out = await fn(payloads.payloads)
        except CodecKeyError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.Response(
            text=json_format.MessageToJson(Payloads(payloads=out)),
            content_type="application/json",
        )

    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.add_routes([
        web.post("/encode", endpoint(codec.encode)),
        web.post("/decode", endpoint(codec.decode)),
        web.options("/encode", preflight),
        web.options("/decode", preflight),
    ])  # fmt: skip
    return app


def app_from_settings(settings: Settings) -> web.Application:
    if settings.payload_encryption_keys is None:
        raise CodecKeyError("PAYLOAD_ENCRYPTION_KEYS is not set: there is nothing to decode")
    codec = EncryptionCodec.from_setting(settings.payload_encryption_keys.get_secret_value())
    token = settings.codec_server_auth_token
    host, _ = split_bind(settings.codec_server_bind)
    if token is None and not is_loopback(host):
        raise CodecKeyError(
            f"refusing to serve decrypted payloads on {host} without CODEC_SERVER_AUTH_TOKEN"
        )
    if token is None:
        log.warning("codec server without CODEC_SERVER_AUTH_TOKEN: anyone on this host can decode")
    return build_app(
        codec,
        origins=cors_origins(settings),
        token=token.get_secret_value() if token else None,
    )
