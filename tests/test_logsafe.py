"""Logs never carry a raw email address or a secret: the filter, and the real worker."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from temporalio.client import Client, WorkflowFailureError

from folksjobs.infra import logsafe
from folksjobs.infra.codec import new_key_entry
from folksjobs.models import WF_SEND_WELCOME, SendWelcomeInput
from folksjobs.settings import Settings
from tests.conftest import Stack, Tenant
from tests.fakes import FakeEmailProvider

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "re_live_0123456789abcdef"


def capture(settings: Settings | None = None) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    logger = logging.getLogger(f"logsafe-test-{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(out))
    logsafe.install(logger, settings=settings)
    return logger, out


def test_emails_masked_in_message_args_and_traceback() -> None:
    parent, out = capture()
    child = logging.getLogger(parent.name + ".child")  # records propagated from below
    child.warning("import row 3: %s is a duplicate of %r", "Jane.Doe@Example.com",
                  "jösé@bücher.de")  # fmt: skip
    try:
        raise ValueError("provider refused bob+news@corp.example.org")
    except ValueError:
        child.exception("send failed for %s", "carol@example.net")
    text = out.getvalue()
    for raw in ("Jane.Doe@Example.com", "jösé@bücher.de", "bob+news@", "carol@example.net"):
        assert raw not in text
    assert "J***@Example.com" in text
    assert "j***@bücher.de" in text
    assert "b***@corp.example.org" in text
    assert "Traceback" in text and "ValueError" in text


def test_passwords_in_urls_masked_logins_kept() -> None:
    logger, out = capture()
    logger.error("cannot reach postgresql://app:hunter2@db.internal:5432/folksjobs")
    logger.error("using postgresql://postgres@127.0.0.1:5432/folksjobs")
    text = out.getvalue()
    assert "hunter2" not in text
    assert "postgresql://app:***@db.internal" in text
    assert "postgresql://postgres@127.0.0.1" in text


def test_secret_settings_never_printed_or_logged() -> None:
    keys = new_key_entry("k1")
    settings = Settings.model_validate({
        "email_api_key": API_KEY, "anthropic_api_key": "sk-ant-xyz1",
        "payload_encryption_keys": keys, "codec_server_auth_token": "tok-123456",
    })  # fmt: skip
    secrets = [API_KEY, "sk-ant-xyz1", keys, keys.split(":")[1], "tok-123456"]
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())]
    for text in shown:
        for secret in secrets:
            assert secret not in text
    logger, out = capture(settings)
    logger.error("provider said: key %s invalid; codec key %s", API_KEY, keys.split(":")[1])
    text = out.getvalue()
    for secret in secrets:
        assert secret not in text
    assert logsafe.MASK in text


class EchoingProvider(FakeEmailProvider):
    """Refuses, echoing both the recipient and the API key, as careless providers do."""

    async def emails(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = await request.json()
        return web.json_response(
            {"message": f"{request.headers['Authorization']} may not send to {body['to'][0]}"},
            status=422,
        )


async def test_worker_process_logs_no_email_and_no_secret(
    client: Client, stack: Stack, tenant: Tenant, task_queue: str, migrated: str
) -> None:
    provider = EchoingProvider()
    async with provider:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": stack.temporal.address,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "DATABASE_URL": stack.database_url,
            "REDIS_URL": stack.redis_url,
            "BLOB_URL": str(stack.root / "blobs"),
            "OUTBOX_DIR": str(stack.root / "outbox" / task_queue),
            "EMAIL_BACKEND": "http",
            "EMAIL_API_URL": provider.url,
            "EMAIL_API_KEY": API_KEY,
            "GRAVATAR_ENABLED": "false",
            "LOG_LEVEL": "DEBUG",
        }
        worker = subprocess.Popen(  # noqa: ASYNC220 (started once; the wait is in a thread)
            [sys.executable, "worker.py"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with pytest.raises(WorkflowFailureError) as info:
                await client.execute_workflow(
                    WF_SEND_WELCOME, SendWelcomeInput(user_id=tenant.user_id),
                    id=f"logsafe-{uuid.uuid4().hex[:10]}", task_queue=task_queue,
                )  # fmt: skip
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = await asyncio.to_thread(worker.communicate, timeout=60)
    # The failure did carry both, so the worker had both in hand when it logged.
    cause = str(info.value.cause.__cause__ or info.value.cause)
    assert tenant.email in cause and API_KEY in cause
    text = output.decode()
    assert worker.returncode == 0, text
    assert "Completing activity as failed" in text
    assert tenant.email not in text
    assert API_KEY not in text
    assert logsafe.mask_email(tenant.email) in text


# Shapes that made the old patterns quadratic: a start tried at every character of a run.
HOSTILE = {
    "word run": "a" * 2_000_000,
    "dotted run": "a." * 1_000_000,
    "at signs": "a@" * 1_000_000,
    "addresses without a dot": "ab@cd " * 333_333,
    "schemes": "a://" * 500_000,
    "url without @": "x://u:" + "p" * 2_000_000,
    "quotes": "a'" * 1_000_000,
}


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_redact_is_fast_on_2mb_of_hostile_text(shape: str) -> None:
    """Issue 19 finding 1: a 2 MB `user_id` logged by a workflow froze the worker."""
    text = HOSTILE[shape]
    started = time.perf_counter()
    out = logsafe.redact(text)
    assert time.perf_counter() - started < 2.0
    assert len(out) <= logsafe.TEXT_MAX + 100


def test_redact_linear_below_the_cut() -> None:
    # Without the cut, the patterns alone stay linear: 60 KB of every shape, all at once.
    text = "".join(v[: logsafe.TEXT_MAX // len(HOSTILE)] for v in HOSTILE.values())
    started = time.perf_counter()
    logsafe.redact(text + " jane@example.com")
    assert time.perf_counter() - started < 0.5


def test_cut_text_leaks_no_half_address_or_secret() -> None:
    secret = "s3cr3t-value-of-a-setting"
    filler = "x " * (logsafe.TEXT_MAX // 2 - 10)
    out = logsafe.redact(filler + "jane.doe@example.com " + secret + " tail" * 1000, [secret])
    assert "jane" not in out and "s3cr3t" not in out
    assert out.endswith("characters cut]")
    assert logsafe.redact("see jane@example.com") == "see j***@example.com"
    assert logsafe.redact("postgresql://postgres@db.internal/x") == (
        "postgresql://postgres@db.internal/x"
    )
    assert logsafe.redact("redis://u:pw@host jane@ex.org") == "redis://u:***@host j***@ex.org"
