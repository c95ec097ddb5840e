"""Email addresses: the one normalisation and validity check every part of an import uses.

Kept free of pydantic and database imports: the chunker's child process loads it.
"""

from __future__ import annotations

import contextlib
import re

_EMAIL_RE = re.compile(
    r"^[^\s@\"<>(),;:\\\[\]]{1,64}"  # local part: no spaces or specials, at most 64
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"  # domain labels, unicode (IDN) allowed
    r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})$"  # a TLD of letters, or punycode
)
MAX_EMAIL = 254


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased; a punycode domain (xn--) in its unicode spelling, so
    user@xn--bcher-kva.de and user@bücher.de are one contact."""
    email = raw.strip().lower()
    if "xn--" in email:
        local, at, domain = email.rpartition("@")
        # Not valid punycode: left as written, and the validator judges it.
        with contextlib.suppress(UnicodeError, ValueError):
            email = f"{local}{at}{domain.encode('ascii').decode('idna')}"
    return email


def email_problem(email: str) -> str | None:
    """Why `email` (already normalised) is not a valid address, or None."""
    if not email:
        return "missing email"
    if len(email) > MAX_EMAIL:
        return f"email longer than {MAX_EMAIL} characters"
    local = email.split("@", 1)[0]
    if not _EMAIL_RE.match(email) or local.startswith(".") or local.endswith(".") or ".." in local:
        return "invalid email address"
    return None


def email_of(cells: list[str], email_index: int) -> str | None:
    """The normalised email of a row if it is valid, for dedup; None when it is not."""
    if email_index >= len(cells):
        return None
    email = normalise_email(cells[email_index])
    return None if email_problem(email) else email
