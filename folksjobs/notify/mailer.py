"""Email delivery: one interface, two real backends.

- OutboxSender: one .eml file per message in a folder a person can open (the default).
- HttpProviderSender: a Resend-style JSON API over aiohttp (POST {base}/emails).

Every message carries an idempotency key (workflow id + purpose): the outbox names the
file after it, the provider gets it as the `Idempotency-Key` header, so a retried send
is never a second email.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

import aiohttp

from folksjobs.infra import metrics
from folksjobs.settings import Settings


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    idempotency_key: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendReceipt:
    message_id: str
    backend: str
    duplicate: bool = False


class EmailSendError(Exception):
    """The provider refused or failed the send; retryable unless `permanent`."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.permanent = permanent


class EmailSender(Protocol):
    name: str

    async def send(self, email: Email) -> SendReceipt: ...


def _safe_name(key: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", key)[:80]
    return f"{readable}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


class OutboxSender:
    name = "outbox"

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder = folder
        self.sender = sender

    async def send(self, email: Email) -> SendReceipt:
        return await asyncio.to_thread(self._write, email)

    def _write(self, email: Email) -> SendReceipt:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{_safe_name(email.idempotency_key)}.eml"
        if path.exists():
            return SendReceipt(message_id=path.name, backend=self.name, duplicate=True)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.to
        msg["Subject"] = email.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="folksjobs.local")
        msg["X-Idempotency-Key"] = email.idempotency_key
        if email.tags:
            msg["X-Tags"] = ",".join(email.tags)
        msg.set_content(email.text)
        msg.add_alternative(email.html, subtype="html")
        # Write-then-rename: a crash mid-write never leaves a half message that would
        # block the retry as a "duplicate".
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(bytes(msg))
        try:
            os.link(tmp, path)
        except FileExistsError:
            return SendReceipt(message_id=path.name, backend=self.name, duplicate=True)
        finally:
            tmp.unlink(missing_ok=True)
        return SendReceipt(message_id=path.name, backend=self.name)


class HttpProviderSender:
    """Resend-compatible: POST /emails {from,to,subject,text,html} -> {"id": ...}."""

    name = "http"

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str | None,
        sender: str,
        timeout: float,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.sender = sender
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, email: Email) -> SendReceipt:
        headers = {"Idempotency-Key": email.idempotency_key[:256]}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        body = {
            "from": self.sender,
            "to": [email.to],
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "tags": [{"name": "kind", "value": t} for t in email.tags],
        }
        try:
            async with self.session.post(
                f"{self.base_url}/emails", json=body, headers=headers, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise EmailSendError(
                        f"email provider answered {resp.status}: {text[:300]}",
                        status=resp.status,
                        # 4xx other than 408/409/429 cannot succeed on retry.
                        permanent=400 <= resp.status < 500 and resp.status not in (408, 409, 429),
                    )
                try:
                    data = await resp.json(content_type=None)
                except ValueError:
                    data = {}
                return SendReceipt(message_id=str(data.get("id", "")), backend=self.name)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise EmailSendError(f"email provider unreachable: {type(e).__name__}: {e}") from e


def build_sender(settings: Settings, session: aiohttp.ClientSession) -> EmailSender:
    if settings.email_backend == "http":
        key = settings.email_api_key.get_secret_value() if settings.email_api_key else None
        return HttpProviderSender(
            session,
            settings.email_api_url,
            key,
            settings.email_from,
            settings.email_timeout_seconds,
        )
    return OutboxSender(settings.outbox_dir, settings.email_from)


class LimitedSender:
    """At most `limit` sends in flight per worker process (EMAIL_CONCURRENCY): the
    provider's rate limit is shared by every activity of the worker."""

    def __init__(self, inner: EmailSender, limit: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.sem = asyncio.Semaphore(limit)

    async def send(self, email: Email) -> SendReceipt:
        async with self.sem:
            return await self.inner.send(email)


DIGEST_TAG = "weekly-digest"  # notify.emails.weekly_digest's tag


class CountingSender:
    """Wraps the email backend: every email a job sends is counted, by its first tag."""

    def __init__(self, inner: EmailSender) -> None:
        self.inner = inner
        self.name = inner.name

    async def send(self, email: Email) -> SendReceipt:
        receipt = await self.inner.send(email)
        if not receipt.duplicate:
            kind = email.tags[0] if email.tags else "other"
            metrics.email_sent(kind)
            if kind == DIGEST_TAG:
                metrics.digest_sent()
        return receipt
