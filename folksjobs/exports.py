"""The export record and the export file's layout (spec 000 process-export, 002 CSV Export).

The file's columns, in order:
- the standard contact fields: email, first_name, last_name, company, phone, avatar_url,
  created_at, updated_at (timestamps in ISO 8601 with their UTC offset);
- `tags`: the contact's tag names, sorted and joined by `;` (a tag name that itself
  contains `;` cannot be told apart from two tags: tag names are labels, not data);
- one column per custom-field key found on any exported contact, sorted by key. Strings
  are written as they are, other JSON values (numbers, booleans, lists, objects) as JSON;
  a contact without the key gets an empty cell.

The tag filter: an export names tags by name. Names are matched exactly (case-sensitive,
as the tags table's unique key is) within the export's workspace; a contact is exported
when it carries ANY of the named tags. Names that match no tag of the workspace match no
contact, so an export naming only unknown tags is empty. No tags named => every contact.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from folksjobs.csvsafe import neutralise
from folksjobs.db import tenant_tx

STANDARD_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "avatar_url",
    "created_at",
    "updated_at",
)
TAGS_COLUMN = "tags"
TAG_SEPARATOR = ";"


class ExportNotFound(LookupError):
    pass


class InvalidExportRequest(ValueError):
    pass


# --- the file -----------------------------------------------------------------------


def header(custom_keys: Sequence[str]) -> list[str]:
    return [*STANDARD_COLUMNS, TAGS_COLUMN, *custom_keys]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False)


def row(contact: asyncpg.Record, custom_keys: Sequence[str]) -> list[str]:
    custom = contact["custom_fields"] or {}
    return [
        *(_cell(contact[c]) for c in STANDARD_COLUMNS),
        contact["tags"] or "",
        *(_cell(custom.get(k)) for k in custom_keys),
    ]


def encode_rows(rows: Iterable[list[str]], *, neutralise_formulas: bool) -> bytes:
    """RFC 4180 CSV (quoted where needed, CRLF line ends), UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for r in rows:
        writer.writerow([neutralise(c) for c in r] if neutralise_formulas else r)
    return buf.getvalue().encode("utf-8")


# --- the queries --------------------------------------------------------------------

_TAGGED = (
    " AND EXISTS (SELECT 1 FROM contact_tags ct"
    " WHERE ct.contact_id = c.id AND ct.tag_id = ANY($2::uuid[]))"
)


def _where(tag_ids: list[str] | None) -> tuple[str, list[Any]]:
    """The export's contacts as SQL, the tag ids as a parameter (never an id list)."""
    if tag_ids is None:
        return "c.workspace_id = $1", []
    return "c.workspace_id = $1" + _TAGGED, [[uuid.UUID(t) for t in tag_ids]]


async def any_contact(
    conn: asyncpg.Connection, workspace_id: str, tag_ids: list[str] | None
) -> bool:
    where, params = _where(tag_ids)
    sql = f"SELECT EXISTS (SELECT 1 FROM contacts c WHERE {where})"
    return bool(await conn.fetchval(sql, uuid.UUID(workspace_id), *params))


async def custom_keys(
    conn: asyncpg.Connection, workspace_id: str, tag_ids: list[str] | None
) -> list[str]:
    where, params = _where(tag_ids)
    sql = (
        f"SELECT DISTINCT k FROM contacts c, jsonb_object_keys(c.custom_fields) AS k"
        f" WHERE {where} ORDER BY k"
    )
    return [r["k"] for r in await conn.fetch(sql, uuid.UUID(workspace_id), *params)]


async def count_contacts(
    conn: asyncpg.Connection, workspace_id: str, tag_ids: list[str] | None
) -> int:
    where, params = _where(tag_ids)
    sql = f"SELECT count(*) FROM contacts c WHERE {where}"
    return int(await conn.fetchval(sql, uuid.UUID(workspace_id), *params))


async def fetch_batch(
    conn: asyncpg.Connection,
    workspace_id: str,
    tag_ids: list[str] | None,
    after_id: int,
    limit: int,
) -> list[asyncpg.Record]:
    """One keyset page: the contacts after `after_id`, in id order (never OFFSET)."""
    where, params = _where(tag_ids)
    n = len(params) + 2
    sql = (
        "SELECT c.id, c.email, c.first_name, c.last_name, c.company, c.phone, c.avatar_url,"
        " c.created_at, c.updated_at, c.custom_fields,"
        " (SELECT string_agg(t.name, $" + str(n + 1) + " ORDER BY t.name)"
        "    FROM contact_tags ct JOIN tags t ON t.id = ct.tag_id"
        "   WHERE ct.contact_id = c.id) AS tags"
        f" FROM contacts c WHERE {where} AND c.id > ${n}"
        f" ORDER BY c.id LIMIT ${n + 2}"
    )
    return list(
        await conn.fetch(sql, uuid.UUID(workspace_id), *params, after_id, TAG_SEPARATOR, limit)
    )


# --- the export record --------------------------------------------------------------


async def workspace_owner(pool: asyncpg.Pool, workspace_id: str) -> str:
    try:
        wid = uuid.UUID(workspace_id)
    except ValueError as e:
        raise InvalidExportRequest(f"workspace id {workspace_id!r} is not a UUID") from e
    owner = await pool.fetchval("SELECT owner_user_id FROM workspaces WHERE id = $1", wid)
    if owner is None:
        raise InvalidExportRequest(f"workspace {workspace_id} does not exist")
    return str(owner)


async def create_export(
    pool: asyncpg.Pool, workspace_id: str, user_id: str | None, tag_names: Sequence[str]
) -> tuple[str, str]:
    """Validate the request and insert a pending export; returns (export_id, user_id).

    The user defaults to the workspace's owner; every named tag must exist in the
    workspace (a typo would otherwise silently export nothing).
    """
    owner = await workspace_owner(pool, workspace_id)
    user = user_id or owner
    try:
        uid = uuid.UUID(user)
    except ValueError as e:
        raise InvalidExportRequest(f"user id {user!r} is not a UUID") from e
    if await pool.fetchval("SELECT 1 FROM users WHERE id = $1", uid) is None:
        raise InvalidExportRequest(f"user {user} not found in the user directory")
    names = list(dict.fromkeys(tag_names))
    export_id = str(uuid.uuid4())
    async with tenant_tx(pool, workspace_id) as conn:
        known = {
            r["name"]
            for r in await conn.fetch(
                "SELECT name FROM tags WHERE workspace_id = $1 AND name = ANY($2::text[])",
                uuid.UUID(workspace_id),
                names,
            )
        }
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidExportRequest(
                f"no tag named {', '.join(map(repr, unknown))} in workspace {workspace_id}"
            )
        await conn.execute(
            "INSERT INTO exports (id, workspace_id, user_id, tag_names, workflow_id)"
            " VALUES ($1, $2, $3, $4, $5)",
            uuid.UUID(export_id),
            uuid.UUID(workspace_id),
            uid,
            names,
            f"export-{export_id}",
        )
    return export_id, str(uid)


async def get_export(owner: asyncpg.Pool, export_id: str) -> dict[str, Any]:
    """An export by id across workspaces: the operator's view (owner pool, no RLS)."""
    try:
        eid = uuid.UUID(export_id)
    except ValueError as e:
        raise ExportNotFound(f"export id {export_id!r} is not a UUID") from e
    rec = await owner.fetchrow(
        "SELECT id, workspace_id, user_id, status, tag_names, blob_key, row_count, file_bytes,"
        " error_log, workflow_id, created_at, started_at, completed_at, duration_ms"
        " FROM exports WHERE id = $1",
        eid,
    )
    if rec is None:
        raise ExportNotFound(f"export {export_id} does not exist")
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(rec).items()}
