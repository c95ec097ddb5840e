"""No email address in Temporal's history when payload keys are configured.

The history is read the way an operator (or anyone with namespace read access) reads it:
`temporal workflow show --output json` against the test server. The grep covers the raw
JSON and every base64 field decoded, so a payload's bytes are searched too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from temporalio.client import Client, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.devtools.devstack import free_port, temporal_cli
from folksjobs.infra.codec import EncryptionCodec, new_key_entry
from folksjobs.infra.codec_server import build_app
from folksjobs.infra.temporal import connect
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput, import_workflow_id
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.fakes import FakeEmailProvider
from tests.importing import csv_bytes, upload

KEYS = new_key_entry("test-2026")


class EchoingProvider(FakeEmailProvider):
    """Refuses every send naming the recipient, as real providers do (422, permanent)."""

    async def emails(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        return web.json_response(
            {"message": f"The `to` field is invalid: {body['to'][0]} bounced"}, status=422
        )


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for v in node.values():
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)
    elif isinstance(node, str):
        yield node


def readable_history(stack: Stack, workflow_id: str, *extra: str) -> str:
    """The history as the CLI shows it, plus every base64 string decoded."""
    proc = subprocess.run(
        [temporal_cli(), "workflow", "show", "--address", stack.temporal.address,
         "--workflow-id", workflow_id, "--output", "json", *extra],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    decoded: list[str] = []
    for s in strings(json.loads(text)):
        if len(s) >= 8 and re.fullmatch(r"[A-Za-z0-9+/=_-]+", s):
            with contextlib.suppress(binascii.Error, ValueError):
                decoded.append(base64.b64decode(s + "==").decode("utf-8", "replace"))
    return "\n".join([text, *decoded])


async def run_failing_welcome(client: Client, stack: Stack, tenant: Tenant, task_queue: str,
                              **overrides: Any) -> str:  # fmt: skip
    provider = EchoingProvider()
    async with provider:
        settings = make_settings(stack, email_backend="http", email_api_url=provider.url,
                                 **overrides)  # fmt: skip
        # The workflow id is not derived from the user id, so finding the id in history
        # can only mean finding it in a payload.
        wid = f"privacy-{uuid.uuid4().hex[:10]}"
        async with running_worker(client, settings, task_queue):
            with pytest.raises(WorkflowFailureError) as info:
                await client.execute_workflow(
                    WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id), id=wid,
                    task_queue=task_queue,
                )  # fmt: skip
    # The caller holding the keys still sees the whole story.
    assert tenant.email in str(info.value.cause.__cause__ or info.value.cause)
    assert provider.calls == 1
    return wid


@pytest.fixture(scope="module")
async def encrypted_client(stack: Stack) -> Client:
    return await connect(make_settings(stack, payload_encryption_keys=KEYS))


async def test_history_without_keys_shows_the_email(client: Client, stack: Stack, tenant: Tenant,
                                                    task_queue: str) -> None:  # fmt: skip
    """The sanity check: the grep below would find the data if it were there."""
    wid = await run_failing_welcome(client, stack, tenant, task_queue)
    history = await asyncio.to_thread(readable_history, stack, wid)
    assert tenant.email in history
    assert tenant.user_id in history


async def test_history_with_keys_hides_email_and_ids(
    encrypted_client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    wid = await run_failing_welcome(encrypted_client, stack, tenant, task_queue,
                                    payload_encryption_keys=KEYS)  # fmt: skip
    history = await asyncio.to_thread(readable_history, stack, wid)
    assert "binary/encrypted" in history
    assert "Encoded failure" in history
    assert tenant.email not in history
    assert tenant.email.split("@")[0] not in history
    assert tenant.user_id not in history


async def test_successful_run_with_keys_hides_payloads(
    encrypted_client: Client, stack: Stack, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack, payload_encryption_keys=KEYS)
    wid = f"privacy-ok-{uuid.uuid4().hex[:10]}"
    async with running_worker(encrypted_client, settings, task_queue):
        result = await encrypted_client.execute_workflow(
            WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id), id=wid,
            task_queue=task_queue,
        )  # fmt: skip
    assert result["backend"] == "outbox"
    history = await asyncio.to_thread(readable_history, stack, wid)
    assert tenant.user_id not in history
    assert "outbox" not in history.replace(wid, "")


@pytest.fixture
async def codec_endpoint() -> AsyncIterator[str]:
    runner = web.AppRunner(build_app(EncryptionCodec.from_setting(KEYS), origins=set(),
                                     token="t0ken"))  # fmt: skip
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_codec_server_lets_the_cli_read_the_history(
    encrypted_client: Client, stack: Stack, tenant: Tenant, task_queue: str, codec_endpoint: str
) -> None:
    wid = await run_failing_welcome(encrypted_client, stack, tenant, task_queue,
                                    payload_encryption_keys=KEYS)  # fmt: skip
    history = await asyncio.to_thread(
        readable_history, stack, wid,
        "--codec-endpoint", codec_endpoint, "--codec-auth", "Bearer t0ken",
    )  # fmt: skip
    assert tenant.email in history
    assert tenant.user_id in history


@pytest.mark.parametrize("keys", [None, KEYS], ids=["plain", "encrypted"])
async def test_import_history_never_shows_contact_emails_or_file_name(
    client: Client,
    encrypted_client: Client,
    stack: Stack,
    tenant: Tenant,
    task_queue: str,
    keys: str | None,
) -> None:
    """Payloads carry ids and counts by design; with keys even those are unreadable."""
    settings = make_settings(stack, temporal_task_queue=task_queue, payload_encryption_keys=keys)
    used = encrypted_client if keys else client
    name = "jane.doe@example.com contacts.csv"  # a file name can be personal data too
    rows = [["email", "first_name"], ["ann.private@example.com", "Ann"], ["bad-bob@", "Bob"]]
    async with running_worker(used, settings, task_queue) as services:
        up = await upload(services, settings, tenant.workspace_id, tenant.user_id,
                          csv_bytes(rows), name=name)  # fmt: skip
        handle = await confirm_import(used, services.pool, settings, tenant.workspace_id,
                                      up.import_id)  # fmt: skip
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    assert (result["inserted"], result["failed"]) == (1, 1)
    history = await asyncio.to_thread(readable_history, stack, import_workflow_id(up.import_id))
    for secret in ("ann.private@example.com", "bad-bob@", "jane.doe@example.com", tenant.email):
        assert secret not in history
    # The sanity check: without keys the grep does read payloads (the result's summary).
    assert ("Processed 2 rows" in history) is (keys is None)
