"""The export record and the export file's layout (spec 000 process-export, 002 CSV Export).

The file's columns (named in folksjobs.exports.layout), in order:
- the standard contact fields: email, first_name, last_name, company, phone, avatar_url,
  created_at, updated_at (timestamps in ISO 8601, in UTC with its offset:
  `2026-01-05T09:30:00+00:00`, `2026-01-05T09:30:00.12345+00:00` — no fraction when it
  is zero, no trailing zeros in it);
- `tags`: the contact's tag names, sorted and joined by `;` (a tag name that itself
  contains `;` cannot be told apart from two tags: tag names are labels, not data);
- one column per custom-field key found on any exported contact, sorted by key. Strings
  are written as they are, other JSON values (numbers, booleans, lists, objects) as JSON;
  a contact without the key gets an empty cell.

The format: RFC 4180 CSV in UTF-8, CRLF after every record (a line break inside a cell is
kept as it is, in a quoted cell), fields quoted only when they hold a comma, a quote, CR or
LF, empty cells unquoted; with EXPORT_NEUTRALISE_FORMULAS, csvsafe's rule on every text
cell. PostgreSQL writes the rows (`COPY (SELECT <the cells as text>) TO STDOUT`, see
export_query); the worker only turns its LF record ends into CRLF (CrlfRecords) and
writes the header.

The tag filter: an export names tags by name. Names are matched exactly (case-sensitive,
as the tags table's unique key is) within the export's workspace; a contact is exported
when it carries ANY of the named tags. Names that match no tag of the workspace match no
contact, so an export naming only unknown tags is empty. No tags named => every contact.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, NamedTuple

import asyncpg

from folksjobs.exports.csvsafe import FORMULA_PREFIXES, GUARD, PLAIN_NUMBER, neutralise
from folksjobs.exports.layout import STANDARD_COLUMNS, TAG_SEPARATOR, header
from folksjobs.infra.db import change_with_file, tenant_tx
from folksjobs.tenancy import NotAMember, WorkspaceNotFound, require_member, workspace_owner


class ExportNotFound(LookupError):
    pass


class InvalidExportRequest(ValueError):
    pass


# --- the file -----------------------------------------------------------------------


def header_line(custom_keys: Sequence[str], *, neutralise_formulas: bool) -> bytes:
    """The header record, written by Python in the rows' format (see CrlfRecords)."""
    cells = header(custom_keys)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(
        [neutralise(c) for c in cells] if neutralise_formulas else cells
    )
    return buf.getvalue().encode("utf-8")


class CrlfRecords:
    """PostgreSQL's CSV byte stream -> the export's records (CRLF line ends), counted.

    COPY (FORMAT csv) ends every record with LF and quotes every field that holds the
    delimiter, a quote, CR or LF, doubling the quotes inside. So a byte lies inside a
    quoted field exactly when an odd number of `"` precede it in the stream: split on `"`,
    a chunk alternates between parts outside and inside quotes, and only the LFs outside
    are record ends. One bit (inside quotes or not) carries over between chunks, which
    may cut a record anywhere. A line break inside a cell stays as it is (LF), as the
    csv module wrote it. Everything here is bytes methods (C): about 0.5 s of CPU per
    million bench rows, most of it in chunks that hold a multi-line cell.
    """

    def __init__(self) -> None:
        self.records = 0
        self.in_quotes = False

    def __call__(self, chunk: bytes) -> bytes:
        parts = chunk.split(b'"')
        outside = 1 if self.in_quotes else 0
        quoted_lfs = b"".join(parts[1 - outside :: 2]).count(b"\n")
        self.records += chunk.count(b"\n") - quoted_lfs
        if len(parts) % 2 == 0:  # an odd number of quotes in the chunk
            self.in_quotes = not self.in_quotes
        if not quoted_lfs:
            return chunk.replace(b"\n", b"\r\n")
        parts[outside::2] = map(bytes.replace, parts[outside::2], repeat(b"\n"), repeat(b"\r\n"))
        return b'"'.join(parts)


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


_TIMESTAMP_COLUMNS = ("created_at", "updated_at")
# The first code point of every formula prefix and of the guard is below this: cells
# starting at or above it (letters, most of the text) skip the rule's other tests.
_ABOVE_PREFIXES = max(map(ord, (*FORMULA_PREFIXES, GUARD))) + 1
_GUARD_SQL = "'" + GUARD.replace("'", "''") + "'"
_PREFIX_CODES = ", ".join(str(ord(p)) for p in FORMULA_PREFIXES)


def _cell(expr: str, neutralise_formulas: bool) -> str:
    """A text column as its CSV cell. An empty string becomes NULL: COPY writes NULL as an
    empty unquoted field (as the csv module writes ""), and "" as a quoted one. With
    `neutralise_formulas`, csvsafe's rule: past any leading quotes, a formula prefix gains
    a leading quote unless the cell is a plain number. `expr` is evaluated several times:
    keep it a column."""
    if not neutralise_formulas:
        return f"nullif({expr}, '')"
    # Only a cell that starts with the guard pays for ltrim (measured: a test on every
    # cell cost the COPY 15 % more CPU when every row had a phone number).
    bare = f"ltrim({expr}, {_GUARD_SQL})"
    plain = f"'^(?:{PLAIN_NUMBER})$'"
    return (
        f"CASE WHEN ascii({expr}) >= {_ABOVE_PREFIXES} THEN {expr}"
        f" WHEN {expr} = '' THEN NULL"
        f" WHEN ascii({expr}) IN ({_PREFIX_CODES}) AND {expr} !~ {plain}"
        f" THEN {_GUARD_SQL} || {expr}"
        f" WHEN ascii({expr}) = {ord(GUARD)} AND ascii({bare}) IN ({_PREFIX_CODES})"
        f" AND {bare} !~ {plain} THEN {_GUARD_SQL} || {expr}"
        f" ELSE {expr} END"
    )


def _timestamp(expr: str) -> str:
    """ISO 8601 with the offset, e.g. 2026-01-05T09:30:00.5+00:00: PostgreSQL's own text
    (no fraction when it is zero, trailing zeros dropped) under the DateStyle and UTC
    TimeZone copy_rows sets, `2026-01-05 09:30:00.5+00`, with a T and the offset's
    minutes (the cheapest spelling measured: to_char or to_jsonb cost twice as much)."""
    return f"replace({expr}::text, ' ', 'T') || ':00'"


def export_query(
    workspace_id: str,
    tag_ids: list[str] | None,
    custom_keys: Sequence[str],
    *,
    neutralise_formulas: bool,
) -> tuple[str, list[Any]]:
    """The export's rows as one SELECT of text cells in the file's column order (header()),
    in contact id order. The inner query computes each value once (OFFSET 0 keeps the
    planner from folding it into the outer one, which would repeat the custom-field
    lookups for every test in _cell); the outer one turns them into cells. The tags are
    one aggregate of the workspace's contact_tags joined in (a merge join in id order),
    not a subquery per contact, which cost a third of the whole COPY. Custom-field keys
    and the tag separator are parameters, never SQL text."""
    where, params = _where(tag_ids)
    n = len(params) + 2
    text_columns = [c for c in STANDARD_COLUMNS if c not in _TIMESTAMP_COLUMNS]
    inner = [
        "c.id",
        *(f"c.{c}" for c in STANDARD_COLUMNS),
        "tg.tags",
        *(f"c.custom_fields ->> ${n + 1 + i}::text AS f{i}" for i in range(len(custom_keys))),
    ]
    cells = {c: _cell(f"e.{c}", neutralise_formulas) for c in text_columns}
    cells.update({c: _timestamp(f"e.{c}") for c in _TIMESTAMP_COLUMNS})
    outer = [
        *(cells[c] for c in STANDARD_COLUMNS),
        _cell("e.tags", neutralise_formulas),
        *(_cell(f"e.f{i}", neutralise_formulas) for i in range(len(custom_keys))),
    ]
    sql = (
        f"SELECT {', '.join(outer)}"
        f" FROM (SELECT {', '.join(inner)} FROM contacts c"
        f" LEFT JOIN (SELECT xt.contact_id, string_agg(t.name, ${n}::text ORDER BY t.name) AS tags"
        "   FROM contact_tags xt JOIN tags t ON t.id = xt.tag_id WHERE xt.workspace_id = $1"
        "  GROUP BY xt.contact_id) tg ON tg.contact_id = c.id"
        f" WHERE {where} ORDER BY c.id OFFSET 0) e ORDER BY e.id"
    )
    return sql, [uuid.UUID(workspace_id), *params, TAG_SEPARATOR, *custom_keys]


async def copy_rows(
    conn: asyncpg.Connection,
    workspace_id: str,
    tag_ids: list[str] | None,
    custom_keys: Sequence[str],
    *,
    neutralise_formulas: bool,
    output: Callable[[bytes, int], Awaitable[None]],
) -> int:
    """Streams the export's rows (no header) through `output(data, records so far)` with
    `COPY (SELECT ...) TO STDOUT (FORMAT csv)`; returns the rows COPY reports.

    Run it in the workspace's tenant_tx: row-level security applies to the COPY, and the
    transaction scopes the DateStyle and UTC time zone of the timestamps. Memory stays at one chunk:
    asyncpg stops reading the socket while `output` runs.
    """
    sql, args = export_query(
        workspace_id, tag_ids, custom_keys, neutralise_formulas=neutralise_formulas
    )
    records = CrlfRecords()

    async def sink(chunk: bytes) -> None:
        data = records(bytes(chunk))  # asyncpg hands over a bytearray
        await output(data, records.records)

    await conn.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'")
    try:
        status = await conn.copy_from_query(sql, *args, output=sink, format="csv")
    except BaseException:
        # asyncpg answers an `output` that fails (or is cancelled) with a query cancel,
        # and when that chunk was the stream's last, the finished COPY never acknowledges
        # it: the connection's next statement (the transaction's ROLLBACK) would wait
        # forever. Closing the connection ends the COPY and the transaction alike.
        conn.terminate()
        raise
    copied = int(status.split()[-1])  # "COPY 12345"
    if copied != records.records:
        raise RuntimeError(
            f"COPY reported {copied} rows but {records.records} records were written:"
            " the line-end conversion lost track of the quoting"
        )
    return copied


# --- the export record --------------------------------------------------------------
# The record's status moves pending -> processing -> completed | failed | cancelled;
# a failed export may be started again, a completed one keeps its file and status.


class ExportFileRecord(NamedTuple):
    blob_key: str
    row_count: int


async def start(conn: asyncpg.Connection, export_id: str) -> list[str] | None:
    """Mark the export processing (from pending, or again after a retry or a failure) and
    return its tag names ([]: no filter); None when there is no such export to start."""
    rec = await conn.fetchrow(
        "UPDATE exports SET status = 'processing', error_log = NULL,"
        " started_at = coalesce(started_at, now()), completed_at = NULL"
        " WHERE id = $1 AND status IN ('pending', 'processing', 'failed')"
        " RETURNING tag_names",
        uuid.UUID(export_id),
    )
    return None if rec is None else list(rec["tag_names"] or [])


async def status(conn: asyncpg.Connection, export_id: str) -> str | None:
    return await conn.fetchval("SELECT status FROM exports WHERE id = $1", uuid.UUID(export_id))


async def tag_ids(conn: asyncpg.Connection, workspace_id: str, names: Sequence[str]) -> list[str]:
    """The workspace's tags of these names (exact, case-sensitive), in id order."""
    rows = await conn.fetch(
        "SELECT id FROM tags WHERE workspace_id = $1 AND name = ANY($2::text[]) ORDER BY id",
        uuid.UUID(workspace_id),
        list(names),
    )
    return [str(r["id"]) for r in rows]


async def complete(
    conn: asyncpg.Connection, workspace_id: str, export_id: str, key: str, rows: int, size: int
) -> bool:
    """Record the file; False when the export is no longer processing: completed by an
    earlier attempt, or cancelled while this one wrote (it must not come back completed)."""
    done = await conn.execute(
        "UPDATE exports SET status = 'completed', blob_key = $2, row_count = $3,"
        " file_bytes = $4, error_log = NULL, completed_at = now(),"
        " duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint"
        " WHERE id = $1 AND workspace_id = $5 AND status = 'processing'",
        uuid.UUID(export_id),
        key,
        rows,
        size,
        uuid.UUID(workspace_id),
    )
    return bool(done.endswith(" 1"))


async def file_of(conn: asyncpg.Connection, export_id: str) -> ExportFileRecord | None:
    """The export's file, once written; None before."""
    rec = await conn.fetchrow(
        "SELECT blob_key, row_count FROM exports WHERE id = $1", uuid.UUID(export_id)
    )
    if rec is None or rec["blob_key"] is None:
        return None
    return ExportFileRecord(rec["blob_key"], rec["row_count"])


async def notify_on_complete(conn: asyncpg.Connection, workspace_id: str) -> bool:
    """The workspace's notify_on_export_complete; no settings row means the schema's
    default, which is on."""
    notify = await conn.fetchval(
        "SELECT notify_on_export_complete FROM workspace_settings WHERE workspace_id = $1",
        uuid.UUID(workspace_id),
    )
    return notify is not False


async def end(conn: asyncpg.Connection, export_id: str, error: str, *, cancelled: bool) -> None:
    """Record the error and end the export failed (or cancelled). A completed export keeps
    its status: its file is good even when the notification afterwards failed."""
    await conn.execute(
        "UPDATE exports SET error_log = jsonb_build_object('error', $2::text, 'at', now()),"
        " status = CASE WHEN status = 'completed' THEN status"
        "   WHEN $3::boolean THEN 'cancelled' ELSE 'failed' END,"
        " completed_at = coalesce(completed_at, now()),"
        " duration_ms = coalesce(duration_ms,"
        "   (extract(epoch FROM now() - started_at) * 1000)::bigint)"
        " WHERE id = $1",
        uuid.UUID(export_id),
        error[:4000],
        cancelled,
    )


async def tag_names(pool: asyncpg.Pool, workspace_id: str, tag_ids: Sequence[str]) -> list[str]:
    """The names of a workspace's tags by id; an id that is not one of them is refused."""
    async with tenant_tx(pool, workspace_id) as conn:
        return await names_of_tags(conn, workspace_id, tag_ids)


async def names_of_tags(
    conn: asyncpg.Connection, workspace_id: str, tag_ids: Sequence[str]
) -> list[str]:
    try:
        ids = [uuid.UUID(t) for t in tag_ids]
    except ValueError as e:
        raise InvalidExportRequest(f"tag_ids: {e}") from None
    rows = await conn.fetch(
        "SELECT id, name FROM tags WHERE workspace_id = $1 AND id = ANY($2::uuid[])",
        uuid.UUID(workspace_id),
        ids,
    )
    found = {str(r["id"]): r["name"] for r in rows}
    unknown = [str(i) for i in ids if str(i) not in found]
    if unknown:
        raise InvalidExportRequest(f"tag_ids: no tag {', '.join(unknown)} in this workspace")
    return [found[str(i)] for i in ids]


async def set_tag_names(conn: asyncpg.Connection, export_id: str, names: Sequence[str]) -> None:
    """The export's filter as the event named it by id (export/csv.confirmed tagIds)."""
    await conn.execute(
        "UPDATE exports SET tag_names = $2 WHERE id = $1", uuid.UUID(export_id), list(names)
    )


async def create_export(
    pool: asyncpg.Pool, workspace_id: str, user_id: str | None, tag_names: Sequence[str]
) -> tuple[str, str]:
    """Validate the request and insert a pending export; returns (export_id, user_id).

    The user defaults to the workspace's owner and must be a member (the link goes to
    them); every named tag must exist in the workspace (a typo would otherwise silently
    export nothing).
    """
    try:
        owner = await workspace_owner(pool, workspace_id)
    except WorkspaceNotFound as e:
        raise InvalidExportRequest(str(e)) from e
    user = user_id or owner
    try:
        uid = uuid.UUID(user)
    except ValueError as e:
        raise InvalidExportRequest(f"user id {user!r} is not a UUID") from e
    if await pool.fetchval("SELECT 1 FROM users WHERE id = $1", uid) is None:
        raise InvalidExportRequest(f"user {user} not found in the user directory")
    try:
        # The link goes to this user: never to someone outside the workspace.
        await require_member(pool, workspace_id, user)
    except NotAMember as e:
        raise InvalidExportRequest(str(e)) from None
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
                f"no tag named {', '.join(map(repr, unknown))} in workspace {workspace_id}; "
                + await _tags_line(conn, workspace_id)
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


_RECORD = """id, workspace_id, user_id, status, tag_names, blob_key, row_count, file_bytes,
    error_log, workflow_id, created_at, started_at, completed_at, duration_ms,
    file_deleted_at"""


async def find_export(pool: asyncpg.Pool, workspace_id: str, export_id: str) -> dict[str, Any]:
    """An export of one workspace; another workspace's id is not found, like a missing one."""
    try:
        eid = uuid.UUID(export_id)
    except ValueError as e:
        raise ExportNotFound(f"export id {export_id!r} is not a UUID") from e
    async with tenant_tx(pool, workspace_id) as conn:
        rec = await conn.fetchrow(
            f"SELECT {_RECORD} FROM exports WHERE id = $1 AND workspace_id = $2",
            eid,
            uuid.UUID(workspace_id),
        )
    if rec is None:
        raise ExportNotFound(f"export {export_id} does not exist")
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(rec).items()}


async def get_export(owner: asyncpg.Pool, export_id: str) -> dict[str, Any]:
    """An export by id across workspaces: the operator's view (owner pool, no RLS)."""
    try:
        eid = uuid.UUID(export_id)
    except ValueError as e:
        raise ExportNotFound(f"export id {export_id!r} is not a UUID") from e
    rec = await owner.fetchrow(f"SELECT {_RECORD} FROM exports WHERE id = $1", eid)
    if rec is None:
        raise ExportNotFound(f"export {export_id} does not exist")
    return {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in dict(rec).items()}


async def in_workspace(pool: asyncpg.Pool, workspace_id: str, export_id: str) -> bool:
    async with tenant_tx(pool, workspace_id) as conn:
        found = await conn.fetchval(
            "SELECT 1 FROM exports WHERE id = $1 AND workspace_id = $2",
            uuid.UUID(export_id),
            uuid.UUID(workspace_id),
        )
    return bool(found)


async def _tags_line(conn: asyncpg.Connection, workspace_id: str, shown: int = 20) -> str:
    """The workspace's tags, for a refusal that names one it does not have."""
    rows = await conn.fetch(
        "SELECT name FROM tags WHERE workspace_id = $1 ORDER BY name LIMIT $2",
        uuid.UUID(workspace_id),
        shown + 1,
    )
    names = [repr(r["name"]) for r in rows]
    if not names:
        return "it has no tags"
    more = ", ..." if len(names) > shown else ""
    return f"its tags: {', '.join(names[:shown])}{more}"


# --- retention (expire-files) ------------------------------------------------------------


async def expired_files(pool: asyncpg.Pool, workspace_id: str, older_than_s: float) -> list[str]:
    """Exports of the workspace whose file was written more than `older_than_s` seconds
    ago and is still stored."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT id FROM exports WHERE workspace_id = $1 AND blob_key IS NOT NULL"
            " AND file_deleted_at IS NULL"
            " AND completed_at < now() - make_interval(secs => $2) ORDER BY completed_at",
            uuid.UUID(workspace_id),
            float(older_than_s),
        )
    return [str(r["id"]) for r in rows]


def file_gone(rec: dict[str, Any], retention_hours: float) -> str | None:
    """Why a completed export's file can no longer be downloaded, or None while it can:
    deleted by expire-files, or past EXPORT_RETENTION_HOURS before the sweep came."""
    deleted, written = rec.get("file_deleted_at"), rec.get("completed_at")
    if deleted is not None:
        what = f"was deleted on {deleted:%Y-%m-%d %H:%M} UTC"
    elif written is not None and datetime.now(UTC) - written > timedelta(hours=retention_hours):
        what = f"expired on {written + timedelta(hours=retention_hours):%Y-%m-%d %H:%M} UTC"
    else:
        return None
    return (
        f"the file of export {rec['id']} {what}: export files are kept"
        f" EXPORT_RETENTION_HOURS ({retention_hours:g} h) after they are written."
        " The export's record stays; export again for a new file"
    )


async def expire_file(
    pool: asyncpg.Pool,
    workspace_id: str,
    export_id: str,
    delete_file: Callable[[str], Awaitable[None]],
) -> bool:
    """Delete an export's file and record when (a download then answers 410, naming the
    time); the record and its counts stay. False when it was already gone."""
    return await change_with_file(
        pool,
        workspace_id,
        delete_file,
        "UPDATE exports SET file_deleted_at = now()"
        " WHERE id = $1 AND workspace_id = $2 AND blob_key IS NOT NULL"
        " AND file_deleted_at IS NULL RETURNING blob_key",
        uuid.UUID(export_id),
        uuid.UUID(workspace_id),
    )
