"""Contacts: turning CSV cells into validated rows, and the bulk upsert.

Validation is a pydantic model (the email normalised and checked by folksjobs.imports.addresses).
A Mapper compiled once per import gives the same answers without pydantic for the rows
that plainly pass, and calls it for the rest. The upsert is one statement per sub-batch
over `unnest` arrays, its rows sorted by email so two imports touching the same emails
lock them in the same order and cannot deadlock each other.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, NamedTuple

import asyncpg
from pydantic import BaseModel, StringConstraints, ValidationError

from folksjobs.exports import layout
from folksjobs.imports import vcard
from folksjobs.imports.addresses import MULTI, choose_email, parse_email
from folksjobs.imports.mapping import TAGS, email_columns

MAX_FIELD = 10_000


# Checked inside pydantic-core (no Python call per field): PostgreSQL cannot store NUL.
Text = Annotated[str, StringConstraints(max_length=MAX_FIELD, pattern=r"^[^\x00]*$")] | None

_REASONS = {
    "string_pattern_mismatch": "contains a NUL byte, which cannot be stored",
    "string_too_long": f"a value is longer than {MAX_FIELD:,} characters",
}


class ContactRow(BaseModel):
    email: str  # normalised and judged by addresses.choose_email before the model
    first_name: Text = None
    last_name: Text = None
    company: Text = None
    phone: Text = None
    tags: Text = None  # the tags cell as it is (layout.split_tags names them at the upsert)
    custom_fields: dict[
        str, Annotated[str, StringConstraints(max_length=MAX_FIELD, pattern=r"^[^\x00]*$")]
    ] = {}


@dataclass
class MappedRow:
    row: int
    contact: ContactRow | None
    error: str | None = None


def map_cells(
    cells: list[str],
    mapping: list[str],
    email: str,
    multi_key: str | None = None,
    allow_test: bool = False,
    fallback: bool = False,
) -> dict[str, object]:
    """Cells -> the fields of a ContactRow, by column index (ragged rows: missing = empty).

    `multi_key`: the custom field that keeps the email column's cell verbatim when it
    holds several addresses (Google's " ::: "), or an address that is not the one chosen
    (not valid, so a further email column's was taken: `fallback`, there are such
    columns), so none is lost."""
    out: dict[str, object] = {}
    custom: dict[str, str] = {}
    for i, target in enumerate(mapping):
        if not target:
            continue
        value = cells[i] if i < len(cells) else ""
        if target.startswith("custom:"):
            if value:
                custom[target[7:]] = value  # verbatim: spaces, a lone space, line breaks
        elif target == "email":
            if multi_key and (
                MULTI in value
                or (fallback and value.strip() and parse_email(value, allow_test)[0] != email)
            ):
                custom[multi_key] = value
        else:
            out[target] = value.strip() or None
    out["email"] = email
    out["custom_fields"] = custom
    return out


def validate(
    row: int,
    cells: list[str],
    mapping: list[str],
    multi_key: str | None = None,
    allow_test: bool = False,
) -> MappedRow:
    if len(cells) > len(mapping) and any(c.strip() for c in cells[len(mapping) :]):
        # Values past the header's last column belong to no field: fail the row rather
        # than drop them silently (empty trailing cells, from trailing delimiters, are fine).
        return MappedRow(
            row, None, f"row has {len(cells)} cells but the header has {len(mapping)} columns"
        )
    columns = email_columns(mapping)
    email, problem = choose_email(cells, columns, allow_test)
    if problem:
        return MappedRow(row, None, problem)
    fields = map_cells(cells, mapping, email, multi_key, allow_test, len(columns) > 1)
    try:
        return MappedRow(row, ContactRow.model_validate(fields))
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        reason = _REASONS.get(err["type"]) or str(err["msg"]).removeprefix("Value error, ")
        return MappedRow(row, None, f"{where}: {reason}")


# (email, first, last, company, phone, tags, *custom): the four standard fields and the
# tags cell stripped of surrounding whitespace as CRMs do, custom fields verbatim;
# "" = empty (and always "" for tags when no column maps to them).
Values = tuple[str, ...]
_TAGS = 5  # the tags cell's place in Values


class Mapper:
    """A column mapping compiled once per import, for the rows that need no pydantic.

    `map` is exactly `validate`, faster: a row whose email was found valid when the file
    was chunked, with no cell over the length limit, no NUL, no cells past the header
    and no " ::: " list in its email cell, is only picked by column index (its standard
    fields stripped). Every other row goes through `validate`, which words its error (or
    accepts it; the quick checks are conservative). Empty cells stay "" and become NULL
    (or an absent custom key) in the upsert.
    """

    def __init__(
        self, mapping: list[str], headers: list[str] | None = None, allow_test: bool = False
    ) -> None:
        mapping = vcard.widened(mapping, headers)
        self.mapping = mapping
        self.allow_test = allow_test  # Settings.email_test_domains
        self.width = len(mapping)
        targets = [t for t in mapping if t]
        self.custom_keys = list(dict.fromkeys(t[7:] for t in targets if t.startswith("custom:")))
        # The email column's own header, as the custom field for its address lists.
        self.multi_key: str | None = None
        if headers and "email" in mapping:
            self.multi_key = headers[mapping.index("email")]
            if self.multi_key not in self.custom_keys:
                self.custom_keys.append(self.multi_key)
        standard = ["first_name", "last_name", "company", "phone", TAGS]
        # A field mapped from two columns merges them (map_cells): rare, left to pydantic.
        self.fast = len(targets) == len(set(targets))
        index = {t: i for i, t in enumerate(mapping) if t}
        self._email_col = index.get("email", -1)
        # Further email columns: the chunker's email may be theirs, and then the email
        # column's own cell must be kept (map_cells), which only validate does.
        self._fallback = len(email_columns(mapping)) > 1
        self._cols = [index.get(f, -1) for f in standard]
        self._cols += [index.get(f"custom:{k}", -1) for k in self.custom_keys]
        self._pad = [""] * (self.width + 1)  # index -1: an unmapped field

    def map(
        self, items: Iterable[tuple[int, list[str], str | None]]
    ) -> tuple[list[int], list[Values], list[tuple[int, str]]]:
        """(row, cells, email found valid by chunking or None) -> rows, values, failures."""
        rows: list[int] = []
        values: list[Values] = []
        failures: list[tuple[int, str]] = []
        width, pad, fast = self.width, self._pad, self.fast
        standard = operator.itemgetter(*self._cols[:5])
        custom = operator.itemgetter(*self._cols[5:]) if self._cols[5:] else (lambda _: ())
        if len(self._cols) == 6:  # one custom column: itemgetter returns it bare
            custom = _one(custom)
        strip = str.strip
        at = self._email_col
        fallback = self._fallback
        for row, cells, email in items:
            if (
                fast
                and email is not None
                and len(cells) <= width
                # A row no longer than the limit has no cell over it (the usual case,
                # one C call); only longer rows are measured cell by cell.
                and (
                    len(joined := "".join(cells)) <= MAX_FIELD or max(map(len, cells)) <= MAX_FIELD
                )
                and "\x00" not in joined
                and (at >= len(cells) or MULTI not in cells[at])
                # The email is the email column's own (plain ASCII: its cell, stripped and
                # lowered); anything else is validate's to judge.
                and (not fallback or (at < len(cells) and strip(cells[at]).lower() == email))
            ):
                padded = cells + pad[len(cells) :]
                rows.append(row)
                values.append((email, *map(strip, standard(padded)), *custom(padded)))
                continue
            m = validate(row, cells, self.mapping, self.multi_key, self.allow_test)
            if m.contact is None:
                failures.append((row, m.error or "invalid row"))
            else:
                c = m.contact
                rows.append(row)
                values.append((
                    c.email, c.first_name or "", c.last_name or "", c.company or "",
                    c.phone or "", c.tags or "",
                    *(c.custom_fields.get(k, "") for k in self.custom_keys),
                ))  # fmt: skip
        return rows, values, failures


def _one(get: Any) -> Any:
    return lambda cells: (get(cells),)


# One column per custom field keeps JSON encoding out of Python, but a function in FROM
# returns at most 1,664 columns: wider files send each row's custom fields as JSON text.
MAX_CUSTOM_COLUMNS = 64
# Each column travels as ONE string, its values joined by this separator and split by
# string_to_array on the server: asyncpg encodes a text[] element by element (with an
# isinstance check per value), which cost more worker CPU than all of the validation.
# A sub-batch where some value holds the separator goes as text[] arrays instead.
SEP = "\x1f"


@functools.lru_cache(maxsize=4 * MAX_CUSTOM_COLUMNS + 8)
def _upsert_sql(custom: int | None, packed: bool, tagged: bool = False) -> str:
    """The upsert for `custom` custom columns (keys in $8, columns from $9), or for None:
    custom fields as one JSON object per row in $8. Every column is a text[] parameter,
    or with `packed` a text one joined by SEP. Empty strings become NULL (an absent key).
    The next parameter is the import that owes the rows their avatar lookup, or NULL
    (folksjobs/imports/avatars.py); with `tagged`, the one after it holds the ids of the
    stored contacts that just gained a tag (_LINK_SQL), a bigint[]: those changed too.

    A contact whose data the row would leave as it is (and that gained no tag) is not
    written: its updated_at stays, and it is not returned, so the caller counts it
    unchanged. Returns (inserted, updated)."""

    def col(n: int) -> str:
        return f"string_to_array(${n}::text, E'\\x1f')" if packed else f"${n}::text[]"

    if custom is None:
        cols, names, fields = f", {col(8)}", ", cf", "t.cf::jsonb"
    elif custom == 0:
        cols, names, fields = "", "", "'{}'::jsonb"
    else:
        cols = "".join(f", {col(i + 9)}" for i in range(custom))
        names = "".join(f", c{i}" for i in range(custom))
        nullable = ", ".join(f"NULLIF(t.c{i}, '')" for i in range(custom))
        fields = f"jsonb_strip_nulls(jsonb_object($8::text[], ARRAY[{nullable}]))"
    standard = ", ".join(col(n) for n in range(2, 8))
    owner = 9 if custom is None else 8 if custom == 0 else 9 + custom
    # The contact's data before and after: equal, the row is not written.
    changed = (
        "(c.first_name, c.last_name, c.company, c.phone, c.avatar_url, c.custom_fields)"
        " IS DISTINCT FROM (COALESCE(EXCLUDED.first_name, c.first_name),"
        " COALESCE(EXCLUDED.last_name, c.last_name), COALESCE(EXCLUDED.company, c.company),"
        " COALESCE(EXCLUDED.phone, c.phone), COALESCE(EXCLUDED.avatar_url, c.avatar_url),"
        " c.custom_fields || EXCLUDED.custom_fields)"
    )
    if tagged:
        changed = f"({changed} OR c.id = ANY(${owner + 1}::bigint[]))"
    return f"""
WITH up AS (
    INSERT INTO contacts AS c
        (workspace_id, email, first_name, last_name, company, phone, avatar_url, custom_fields,
         avatar_pending)
    SELECT $1::uuid, t.e, NULLIF(t.f, ''), NULLIF(t.l, ''), NULLIF(t.co, ''), NULLIF(t.p, ''),
           NULLIF(t.a, ''), {fields}, ${owner}::uuid
    FROM unnest({standard}{cols}) AS t(e, f, l, co, p, a{names})
    ORDER BY t.e
    ON CONFLICT (workspace_id, email) DO UPDATE SET
        first_name    = COALESCE(EXCLUDED.first_name, c.first_name),
        last_name     = COALESCE(EXCLUDED.last_name, c.last_name),
        company       = COALESCE(EXCLUDED.company, c.company),
        phone         = COALESCE(EXCLUDED.phone, c.phone),
        avatar_url    = COALESCE(EXCLUDED.avatar_url, c.avatar_url),
        custom_fields = c.custom_fields || EXCLUDED.custom_fields,
        -- The latest import to touch a contact owes its lookup; with Gravatar off it
        -- leaves the mark as it was (an unchanged contact: _REOWN_SQL).
        avatar_pending = COALESCE(EXCLUDED.avatar_pending, c.avatar_pending),
        updated_at    = now()
    -- Importing a workspace's own export into it changes no contact.
    WHERE {changed}
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS inserted, count(*) FILTER (WHERE NOT inserted) AS updated
FROM up
"""


# Tags a file names that the workspace does not have yet, by name; a concurrent import
# creating the same name waits for the other and takes its tag. Sorted: two imports
# creating the same names lock them in the same order.
_TAGS_SQL = """
INSERT INTO tags (id, workspace_id, name)
SELECT gen_random_uuid(), $1::uuid, n FROM unnest($2::text[]) AS n ORDER BY n
ON CONFLICT (workspace_id, name) DO NOTHING
"""
# Each row's tags on the contacts already stored, never taken off; before the upsert, so
# the contacts that gained a tag are known (`gained`) and counted as updated. `found`: how
# many of the rows' emails had a contact; fewer than the emails, and the statement runs
# again after the upsert for the contacts it inserted (or another import did meanwhile).
# Every step is a unique-index lookup (contacts by email, tags by name, the link's key).
_LINK_SQL = """
WITH found AS (
    SELECT k.id AS contact, g.id AS tag, p.e FROM unnest($2::text[], $3::text[]) AS p(e, n)
    JOIN contacts k ON k.workspace_id = $1 AND k.email = p.e
    JOIN tags g ON g.workspace_id = $1 AND g.name = p.n
), linked AS (
    INSERT INTO contact_tags (workspace_id, contact_id, tag_id)
    SELECT $1::uuid, contact, tag FROM found ORDER BY 2, 3
    ON CONFLICT DO NOTHING
    RETURNING contact_id
)
SELECT (SELECT count(DISTINCT e) FROM found) AS found,
       (SELECT array_agg(DISTINCT contact_id) FROM linked) AS gained
"""
# An unchanged contact is not written by the upsert, but still owed its avatar lookup by
# this import, as every contact it touches (avatars.py): only that mark moves.
_REOWN_SQL = """
UPDATE contacts SET avatar_pending = $2
WHERE workspace_id = $1 AND email = ANY($3::text[]) AND avatar_pending IS DISTINCT FROM $2
"""


class Upserted(NamedTuple):
    inserted: int
    updated: int
    unchanged: int  # stored as the row would leave it (tags included): not written


async def upsert(
    conn: asyncpg.Connection,
    workspace_id: str,
    custom_keys: list[str],
    values: list[Values],
    avatars: dict[str, str | None],
    avatar_owner: str | None = None,
) -> Upserted:
    """Insert or update `values` (distinct emails, Mapper's layout); every row is counted
    once: inserted, updated or unchanged (the ledger adds up: inserted + updated +
    unchanged + failed + duplicates = rows). `avatar_owner`: the import that owes these
    contacts their avatar lookup (the avatars job fills them in after the commit), or None.
    The rows' tags are created in the workspace when missing and added to their contacts."""
    if not values:
        return Upserted(0, 0, 0)
    ordered = sorted(values)
    columns: list[Sequence[str]] = list(zip(*ordered, strict=True))
    tag_cells = columns.pop(_TAGS)
    emails = columns[0]
    pairs = [(e, n) for e, cell in zip(emails, tag_cells, strict=True) if cell
             for n in layout.split_tags(cell)]  # fmt: skip
    gained, unlinked = await _tag(conn, workspace_id, pairs) if pairs else ([], 0)
    columns.insert(5, [avatars.get(e) or "" for e in emails] if avatars else [""] * len(ordered))
    custom: list[Sequence[str]] = columns[6:]
    if any(not any(c) for c in custom):
        # A custom column empty in every row of this sub-batch sets no key: not sent (a
        # sparse export, or the email column's address-list field, rarely used).
        kept = [i for i, c in enumerate(custom) if any(c)]
        custom_keys = [custom_keys[i] for i in kept]
        custom = [custom[i] for i in kept]
    as_json = len(custom_keys) > MAX_CUSTOM_COLUMNS
    if as_json:
        custom = [[
            json.dumps({k: v for k, v in zip(custom_keys, row, strict=True) if v},
                       ensure_ascii=False)
            for row in zip(*custom, strict=True)
        ]]  # fmt: skip
    sent = columns[:6] + custom
    joined = [SEP.join(c) for c in sent]
    packed = all(j.count(SEP) == len(ordered) - 1 for j in joined)
    params: list[Any] = joined if packed else [list(c) for c in sent]
    if custom_keys and not as_json:
        params.insert(6, custom_keys)
    params.append(avatar_owner)
    if pairs:
        params.append(gained)
    sql = _upsert_sql(None if as_json else len(custom_keys), packed, bool(pairs))
    r = await conn.fetchrow(sql, workspace_id, *params)
    assert r is not None
    inserted, updated = int(r["inserted"]), int(r["updated"])
    unchanged = len(ordered) - inserted - updated
    if unlinked:
        await _link(conn, workspace_id, pairs)
    if avatar_owner is not None and unchanged:
        await conn.execute(_REOWN_SQL, workspace_id, avatar_owner, list(emails))
    return Upserted(inserted, updated, unchanged)


async def _tag(
    conn: asyncpg.Connection, workspace_id: str, pairs: list[tuple[str, str]]
) -> tuple[list[int], int]:
    """The (email, tag name) pairs' tags created where missing and added to the contacts
    already stored: (the ids of those that gained a tag, how many emails had no contact)."""
    await conn.execute(_TAGS_SQL, workspace_id, sorted({n for _, n in pairs}))
    found, gained = await _link(conn, workspace_id, pairs)
    return gained, len({e for e, _ in pairs}) - found


async def _link(
    conn: asyncpg.Connection, workspace_id: str, pairs: list[tuple[str, str]]
) -> tuple[int, list[int]]:
    r = await conn.fetchrow(_LINK_SQL, workspace_id, [e for e, _ in pairs], [n for _, n in pairs])
    assert r is not None
    return int(r["found"]), list(r["gained"] or [])
