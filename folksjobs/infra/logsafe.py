"""Logs never carry a raw email address or a password in a URL.

A filter on the output handlers rewrites each record's final text (message, arguments,
traceback): email addresses become `j***@example.com` (mask_email below), and
`scheme://user:password@host` becomes `scheme://user:***@host`. Secrets held as
`SecretStr` settings print as `**********` on their own; this catches what slips through
an f-string, an exception text or a library's message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pydantic import SecretStr

from folksjobs.settings import Settings

MASK = "**********"
# Characters of one log text that are kept (and redacted); the rest is cut.
TEXT_MAX = 64 * 1024

# Unicode-aware (\w) so `jösé@bücher.de` is caught too; the domain needs a dot, which
# keeps `user@host` from a Python traceback's frame names and `x@y` noise out.
# Both patterns run in linear time on text a caller controls (a 2 MB id in a log line):
# the lookbehinds let a match start only where a run of its first characters starts, so
# a long run is scanned once instead of once from each of its characters.
# A quote is part of an address (`o'brien@x.ie`) and may also open one (`'jane@x.org'`).
EMAIL = re.compile(r"(?:(?<![\w.+'%-])|(?<=(?<![\w.+'%-])'))[\w+%-][\w.+'%-]*@[\w-]+(?:\.[\w-]+)+")
URL_PASSWORD = re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
# `postgresql://postgres@db.internal/x` names a login, not a person: left readable.
URL_SCHEME_END = re.compile(r"(?i)[a-z][a-z0-9+.-]*\Z")
URL_USER = re.compile(r"[^\s:/@]*:")


def mask_email(address: str) -> str:
    """`j***@example.com`: enough to tell addresses apart in a log, not to read them."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"


def _in_url_userinfo(text: str, start: int) -> bool:
    """`scheme://` or `scheme://user:` ends at `start`. Looks back at most 300 characters
    with a substring search, never a regex search, so each match costs O(300)."""
    sep = text.rfind("://", max(0, start - 300), start)
    if sep < 0 or not URL_SCHEME_END.search(text, max(0, sep - 32), sep):
        return False
    return sep + 3 == start or URL_USER.fullmatch(text, sep + 3, start) is not None


def _mask(m: re.Match[str]) -> str:
    if _in_url_userinfo(m.string, m.start()):
        return m.group(0)
    return mask_email(m.group(0))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    if len(text) > TEXT_MAX:
        # Past this a log line is a caller's payload, not a message: the cut keeps each
        # record's cost bounded however large an input a caller sends. The token the cut
        # splits goes too: half an address would no longer look like one.
        parts = text[:TEXT_MAX].rsplit(None, 1)
        head = parts[0] if len(parts) == 2 else ""
        text = f"{head} ... [{len(text) - len(head):,} characters cut]"
    text = URL_PASSWORD.sub(r"\1***@", text)
    return EMAIL.sub(_mask, text)


def secrets_of(settings: Settings) -> list[str]:
    """Every SecretStr setting's value, longest first (so no secret is half-replaced)."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and len(value.get_secret_value()) >= 4:
            values.append(value.get_secret_value())
            # The key list is also read entry by entry and key by key.
            values += [p for p in re.split(r"[,:]", value.get_secret_value()) if len(p) >= 16]
    return sorted(set(values), key=len, reverse=True)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def install(logger: logging.Logger | None = None, *, settings: Settings | None = None) -> None:
    """Put the filter on every handler of `logger` (the root by default).

    On handlers, not loggers: a logger's own filters do not see records propagated from
    its children (`temporalio.activity`, `folksjobs.worker`, ...), a handler's do.
    With `settings`, the values of its secrets are masked wherever they appear (an API
    key echoed back in a provider's error message, say).
    """
    target = logger or logging.getLogger()
    secrets = secrets_of(settings) if settings else []
    for handler in target.handlers:
        for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
            handler.removeFilter(old)
        handler.addFilter(RedactingFilter(secrets))
