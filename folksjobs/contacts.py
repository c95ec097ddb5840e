"""Contacts: turning CSV cells into validated rows, and the bulk upsert.

Validation is a pydantic model (email trimmed and lower-cased, checked by one regex that
accepts plus tags, unicode local parts and IDN domains). The upsert is one statement per
sub-batch over `unnest` arrays, its rows sorted by email so two imports touching the same
emails lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from pydantic import AfterValidator, BaseModel, StringConstraints, ValidationError

_EMAIL_RE = re.compile(
    r"^[^\s@\"<>(),;:\\\[\]]{1,64}"  # local part: no spaces or specials, at most 64
    r"@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"  # domain labels, unicode (IDN) allowed
    r"(?:[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})$"  # a TLD of letters, or punycode
)
MAX_EMAIL = 254
MAX_FIELD = 10_000


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


def _check_email(v: str) -> str:
    v = normalise_email(v)
    if problem := email_problem(v):
        raise ValueError(problem)
    return v


# Checked inside pydantic-core (no Python call per field): PostgreSQL cannot store NUL.
Text = Annotated[str, StringConstraints(max_length=MAX_FIELD, pattern=r"^[^\x00]*$")] | None

_REASONS = {
    "string_pattern_mismatch": "contains a NUL byte, which cannot be stored",
    "string_too_long": f"a value is longer than {MAX_FIELD:,} characters",
}


class ContactRow(BaseModel):
    email: Annotated[str, AfterValidator(_check_email)]
    first_name: Text = None
    last_name: Text = None
    company: Text = None
    phone: Text = None
    custom_fields: dict[
        str, Annotated[str, StringConstraints(max_length=MAX_FIELD, pattern=r"^[^\x00]*$")]
    ] = {}


@dataclass
class MappedRow:
    row: int
    contact: ContactRow | None
    error: str | None = None


def map_cells(cells: list[str], mapping: list[str]) -> dict[str, object]:
    """Cells -> the fields of a ContactRow, by column index (ragged rows: missing = empty)."""
    out: dict[str, object] = {}
    custom: dict[str, str] = {}
    for i, target in enumerate(mapping):
        if not target:
            continue
        value = cells[i].strip() if i < len(cells) else ""
        if target.startswith("custom:"):
            if value:
                custom[target[7:]] = value
        else:
            out[target] = value or None
    if out.get("email") is None:
        out["email"] = ""
    out["custom_fields"] = custom
    return out


def validate(row: int, cells: list[str], mapping: list[str]) -> MappedRow:
    if len(cells) > len(mapping) and any(c.strip() for c in cells[len(mapping) :]):
        # Values past the header's last column belong to no field: fail the row rather
        # than drop them silently (empty trailing cells, from trailing delimiters, are fine).
        return MappedRow(
            row, None, f"row has {len(cells)} cells but the header has {len(mapping)} columns"
        )
    try:
        return MappedRow(row, ContactRow.model_validate(map_cells(cells, mapping)))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        reason = _REASONS.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        return MappedRow(row, None, reason if where == "email" else f"{where}: {reason}")


def email_of(cells: list[str], email_index: int) -> str | None:
    """The normalised email of a row if it is valid, for dedup; None when it is not."""
    if email_index >= len(cells):
        return None
    email = normalise_email(cells[email_index])
    return None if email_problem(email) else email


UPSERT_SQL = """
WITH up AS (
    INSERT INTO contacts AS c
        (workspace_id, email, first_name, last_name, company, phone, avatar_url, custom_fields)
    SELECT $1::uuid, t.e, t.f, t.l, t.co, t.p, t.a, t.cf::jsonb
    FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[]) AS t(e, f, l, co, p, a, cf)
    ORDER BY t.e
    ON CONFLICT (workspace_id, email) DO UPDATE SET
        first_name    = COALESCE(EXCLUDED.first_name, c.first_name),
        last_name     = COALESCE(EXCLUDED.last_name, c.last_name),
        company       = COALESCE(EXCLUDED.company, c.company),
        phone         = COALESCE(EXCLUDED.phone, c.phone),
        avatar_url    = COALESCE(EXCLUDED.avatar_url, c.avatar_url),
        custom_fields = c.custom_fields || EXCLUDED.custom_fields,
        updated_at    = now()
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) AS total FROM up
"""


async def upsert(
    conn: asyncpg.Connection,
    workspace_id: str,
    rows: list[ContactRow],
    avatars: dict[str, str | None],
) -> tuple[int, int]:
    """Insert or update `rows` (distinct emails); returns (inserted, updated)."""
    if not rows:
        return 0, 0
    rows = sorted(rows, key=lambda r: r.email)
    rec = await conn.fetchrow(
        UPSERT_SQL,
        workspace_id,
        [r.email for r in rows],
        [r.first_name for r in rows],
        [r.last_name for r in rows],
        [r.company for r in rows],
        [r.phone for r in rows],
        [avatars.get(r.email) for r in rows],
        [json.dumps(r.custom_fields, ensure_ascii=False) for r in rows],
    )
    assert rec is not None
    return int(rec["inserted"]), int(rec["total"]) - int(rec["inserted"])
