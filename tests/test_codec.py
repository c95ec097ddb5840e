"""The payload codec and the codec server, without a Temporal server."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from temporalio.api.common.v1 import Payload
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

from folksjobs.devtools.devstack import free_port
from folksjobs.infra.codec import (
    ENCODING,
    KEY_ID_META,
    CodecKeyError,
    EncryptionCodec,
    new_key_entry,
    parse_keys,
)
from folksjobs.infra.codec_server import app_from_settings, build_app
from folksjobs.infra.temporal import data_converter
from folksjobs.settings import Settings

EMAIL = "jane.doe@example.com"


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def settings(**kw: object) -> Settings:
    return Settings.model_validate(kw)


async def test_round_trip_hides_the_data() -> None:
    codec = EncryptionCodec.from_setting(new_key_entry("k1"))
    [sealed] = await codec.encode([plain(EMAIL)])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_META] == b"k1"
    assert EMAIL.encode() not in sealed.SerializeToString()
    [opened] = await codec.decode([sealed])
    assert opened == plain(EMAIL)
    # A fresh nonce each time: the same value never gives the same ciphertext.
    [again] = await codec.encode([plain(EMAIL)])
    assert again.data != sealed.data


async def test_rotation_by_key_id() -> None:
    old, new = new_key_entry("2025"), new_key_entry("2026")
    [under_old] = await EncryptionCodec.from_setting(old).encode([plain("a")])
    rotated = EncryptionCodec.from_setting(f"{new},{old}")
    assert rotated.key_id == "2026"
    # Old history still reads; new payloads use the first key.
    assert await rotated.decode([under_old]) == [plain("a")]
    [under_new] = await rotated.encode([plain("b")])
    assert under_new.metadata[KEY_ID_META] == b"2026"
    # Once the old key is dropped, its payloads fail loudly, naming the missing id.
    with pytest.raises(CodecKeyError, match=r"'2025'.*not among"):
        await EncryptionCodec.from_setting(new).decode([under_old])


async def test_tampering_is_detected() -> None:
    entry_a, entry_b = new_key_entry("a"), new_key_entry("b")
    codec = EncryptionCodec.from_setting(f"{entry_a},{entry_b}")
    [sealed] = await codec.encode([plain("x")])
    # Flip a bit of the tag: overwriting the last byte with a constant left the payload
    # intact whenever the random tag already ended in it (1 run in 256).
    flipped = Payload(
        metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    )
    with pytest.raises(CodecKeyError, match="does not decrypt"):
        await codec.decode([flipped])
    # Relabelling the key id fails too: the id is bound to the ciphertext.
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_META: b"b"}, data=sealed.data)
    with pytest.raises(CodecKeyError, match="does not decrypt"):
        await codec.decode([relabelled])


async def test_unencrypted_payloads_pass_through_decode() -> None:
    codec = EncryptionCodec.from_setting(new_key_entry("k"))
    assert await codec.decode([plain("raw from the CLI")]) == [plain("raw from the CLI")]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("", "empty"),
        ("nokey", "id:base64key"),
        ("k:not base64!", "not valid base64"),
        (f"k:{base64.b64encode(b'short').decode()}", "5 bytes; AES-256 needs 32"),
        ("bad id:" + base64.b64encode(b"x" * 32).decode(), "id:base64key"),
    ],
)
def test_bad_key_settings_are_refused_clearly(setting: str, message: str) -> None:
    with pytest.raises(CodecKeyError, match=message):
        parse_keys(setting)


def test_duplicate_key_ids_are_refused() -> None:
    entry = new_key_entry("same")
    with pytest.raises(CodecKeyError, match="appears twice"):
        parse_keys(f"{entry},{entry}")


def test_key_errors_never_echo_the_key() -> None:
    secret = base64.b64encode(b"s" * 31).decode()
    with pytest.raises(CodecKeyError) as info:
        parse_keys(f"k:{secret}")
    assert secret not in str(info.value)


def test_data_converter_encodes_failures_only_with_keys() -> None:
    with_keys = data_converter(settings(payload_encryption_keys=new_key_entry("k")))
    assert isinstance(with_keys.payload_codec, EncryptionCodec)
    assert isinstance(with_keys.failure_converter, DefaultFailureConverterWithEncodedAttributes)
    without = data_converter(settings())
    assert without.payload_codec is None
    assert not isinstance(without.failure_converter, DefaultFailureConverterWithEncodedAttributes)


# --- the codec server -------------------------------------------------------------------

UI = "http://localhost:8233"


Server = tuple[str, EncryptionCodec]


@pytest.fixture
async def codec_server() -> AsyncIterator[Server]:
    codec = EncryptionCodec.from_setting(new_key_entry("k1"))
    runner = web.AppRunner(build_app(codec, origins={UI}, token="s3cret"))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", codec
    await runner.cleanup()


def payloads_json(*payloads: Payload) -> dict[str, object]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


async def test_codec_server_encode_then_decode_with_token(codec_server: Server) -> None:
    url, _codec = codec_server
    auth = {"Authorization": "Bearer s3cret", "Origin": UI, "X-Namespace": "default"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/encode", json=payloads_json(plain(EMAIL)), headers=auth) as r:
            assert r.status == 200
            assert r.headers["Access-Control-Allow-Origin"] == UI
            encoded = await r.json()
        meta = encoded["payloads"][0]["metadata"]
        assert base64.b64decode(meta["encoding"]) == ENCODING
        assert EMAIL not in json.dumps(encoded)
        async with http.post(f"{url}/decode", json=encoded, headers=auth) as r:
            assert r.status == 200
            decoded = await r.json()
    assert base64.b64decode(decoded["payloads"][0]["data"]) == json.dumps(EMAIL).encode()


async def test_codec_server_refuses_without_the_token(codec_server: Server) -> None:
    url, codec = codec_server
    [sealed] = await codec.encode([plain(EMAIL)])
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            async with http.post(f"{url}/decode", json=payloads_json(sealed),
                                 headers=headers) as r:  # fmt: skip
                assert r.status == 401
                body = await r.text()
                assert EMAIL not in body
                assert "bearer token" in body


async def test_codec_server_cors_preflight(codec_server: Server) -> None:
    url, _ = codec_server
    preflight = {
        "Origin": UI,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }
    async with aiohttp.ClientSession() as http:
        # Browsers send no credentials on a preflight: it must pass without the token.
        async with http.options(f"{url}/decode", headers=preflight) as r:
            assert r.status == 204
            assert r.headers["Access-Control-Allow-Origin"] == UI
            assert "POST" in r.headers["Access-Control-Allow-Methods"]
            allowed = r.headers["Access-Control-Allow-Headers"]
            assert {"authorization", "content-type", "x-namespace"} <= set(allowed.split(","))
            assert r.headers["Access-Control-Allow-Credentials"] == "true"
        evil = {**preflight, "Origin": "http://evil.example"}
        async with http.options(f"{url}/decode", headers=evil) as r:
            assert "Access-Control-Allow-Origin" not in r.headers


async def test_codec_server_bad_requests_get_clear_errors(codec_server: Server) -> None:
    url, _ = codec_server
    auth = {"Authorization": "Bearer s3cret"}
    foreign = await EncryptionCodec.from_setting(new_key_entry("other")).encode([plain("x")])
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/decode", data="{", headers={**auth,
                             "Content-Type": "application/json"}) as r:  # fmt: skip
            assert r.status == 400
            assert "not a Payloads JSON object" in await r.text()
        async with http.post(f"{url}/decode", json=payloads_json(*foreign), headers=auth) as r:
            assert r.status == 400
            assert "'other'" in await r.text()
        async with http.post(f"{url}/decode", data="x", headers=auth) as r:
            assert r.status == 415


def test_codec_server_settings() -> None:
    with pytest.raises(CodecKeyError, match="PAYLOAD_ENCRYPTION_KEYS is not set"):
        app_from_settings(settings())
    with pytest.raises(CodecKeyError, match="without CODEC_SERVER_AUTH_TOKEN"):
        app_from_settings(settings(payload_encryption_keys=new_key_entry("k"),
                                   codec_server_bind="0.0.0.0:8081"))  # fmt: skip
    app_from_settings(settings(payload_encryption_keys=new_key_entry("k"),
                               codec_server_bind="0.0.0.0:8081",
                               codec_server_auth_token="t"))  # fmt: skip
