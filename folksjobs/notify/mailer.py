"""Email delivery: one interface, two real backends.

- OutboxSender: one .eml file per message in a folder a person can open (the default).
- HttpProviderSender: a Resend-style JSON API over aiohttp (POST {base}/emails).

Every message carries an idempotency key (workflow id + purpose): the outbox names the
file after it, the provider gets it as the `Idempotency-Key` header, so a retried send
is never a second email. A refusal says whether it is permanent (400, 401, 403, 422...)
or temporary (429 with its Retry-After, 5xx, a timeout, no connection); what waits and
for how long is decided by activities/delivery.py, the cluster's pace by notify/pace.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parsedate_to_datetime
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
    """The provider refused or failed the send. `permanent`: it cannot succeed on retry
    (400, 401, 403, 422...). Otherwise a temporary refusal (429, 5xx, timeout, connection
    error): the email waits, `retry_after` seconds when the provider said how long."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        permanent: bool = False,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.permanent = permanent
        self.retry_after = retry_after


class EmailSender(Protocol):
    name: str

    async def send(self, email: Email) -> SendReceipt: ...

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]: ...


# 4xx answers a retry can change: a timeout, a concurrent request with the same
# Idempotency-Key still in progress (Resend: 409 concurrent_idempotent_requests), the rate.
TEMPORARY_4XX = frozenset({408, 409, 429})
# Resend's 409 for a key already used with another body: the first request was accepted.
ALREADY_SENT = "invalid_idempotent_request"


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def batch_key(emails: list[Email]) -> str:
    """One batch request's Idempotency-Key, from its messages' own keys: a retry of the
    same messages is the same request, so an accepted batch whose answer was lost is
    dropped by the provider, not sent twice."""
    joined = "\n".join(sorted(e.idempotency_key for e in emails))
    return f"batch-{hashlib.sha256(joined.encode()).hexdigest()[:40]}"


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

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
        return [await self.send(e) for e in emails]


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

    def _body(self, email: Email) -> dict[str, object]:
        return {
            "from": self.sender,
            "to": [email.to],
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "tags": [{"name": "kind", "value": t} for t in email.tags],
        }

    async def _post(self, path: str, body: object, key: str) -> object | None:
        """The provider's answer; None when the key was already used for an accepted
        request (Resend: 409 invalid_idempotent_request, the message having changed
        since, e.g. the digest's total): that first request is the email, sent."""
        headers = {"Idempotency-Key": key[:256]}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        try:
            async with self.session.post(
                f"{self.base_url}{path}", json=body, headers=headers, timeout=self.timeout
            ) as resp:
                text = await resp.text()
                if resp.status == 409 and ALREADY_SENT in text:
                    return None
                if resp.status >= 400:
                    raise EmailSendError(
                        f"email provider answered {resp.status}: {text[:300]}",
                        status=resp.status,
                        permanent=resp.status < 500 and resp.status not in TEMPORARY_4XX,
                        retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                    )
                try:
                    return json.loads(text) if text else {}
                except ValueError:
                    return {}
        except (aiohttp.ClientError, TimeoutError) as e:
            raise EmailSendError(f"email provider unreachable: {type(e).__name__}: {e}") from e

    async def send(self, email: Email) -> SendReceipt:
        data = await self._post("/emails", self._body(email), email.idempotency_key)
        if data is None:
            return SendReceipt(message_id="", backend=self.name, duplicate=True)
        message_id = data.get("id", "") if isinstance(data, dict) else ""
        return SendReceipt(message_id=str(message_id), backend=self.name)

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
        """Resend's POST /emails/batch: up to 100 messages, one request, one answer
        {"data": [{"id": ...}, ...]} in the order sent."""
        data = await self._post("/emails/batch", [self._body(e) for e in emails], batch_key(emails))
        if data is None:
            return [SendReceipt("", self.name, duplicate=True) for _ in emails]
        ids = data.get("data", []) if isinstance(data, dict) else []
        return [
            SendReceipt(
                message_id=str(ids[i].get("id", "")) if i < len(ids) else "", backend=self.name
            )
            for i in range(len(emails))
        ]


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
    """At most `limit` sends in flight per worker process (EMAIL_CONCURRENCY), waiting
    for their turn included; the rate is the cluster's (notify/pace.py)."""

    def __init__(self, inner: EmailSender, limit: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.sem = asyncio.Semaphore(limit)

    async def send(self, email: Email) -> SendReceipt:
        async with self.sem:
            return await self.inner.send(email)

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
        async with self.sem:
            return await self.inner.send_batch(emails)


DIGEST_TAG = "weekly-digest"  # notify.emails.weekly_digest's tag


class CountingSender:
    """Wraps the email backend: every email a job sends is counted, by its first tag."""

    def __init__(self, inner: EmailSender) -> None:
        self.inner = inner
        self.name = inner.name

    async def send(self, email: Email) -> SendReceipt:
        receipt = await self.inner.send(email)
        self._count(email, receipt)
        return receipt

    async def send_batch(self, emails: list[Email]) -> list[SendReceipt]:
        receipts = await self.inner.send_batch(emails)
        for email, receipt in zip(emails, receipts, strict=True):
            self._count(email, receipt)
        return receipts

    @staticmethod
    def _count(email: Email, receipt: SendReceipt) -> None:
        if not receipt.duplicate:
            kind = kind_of(email)
            metrics.email_sent(kind)
            if kind == DIGEST_TAG:
                metrics.digest_sent()


def kind_of(email: Email) -> str:
    return email.tags[0] if email.tags else "other"
