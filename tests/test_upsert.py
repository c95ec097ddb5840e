"""The bulk upsert's wire forms all store the same contacts.

Columns normally travel as one separator-joined string each; a value holding the
separator switches the sub-batch to text[] arrays, and more than MAX_CUSTOM_COLUMNS
custom fields go as JSON. Whichever form is used, the stored rows are the same, empty
cells store NULL (or no key), and a lone empty value does not shift any column.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from folksjobs.imports.contacts import MAX_CUSTOM_COLUMNS, SEP, Mapper, Upserted, upsert
from folksjobs.infra.db import tenant_tx
from tests.conftest import Tenant


async def stored(owner: asyncpg.Pool, workspace_id: str) -> dict[str, dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT email, first_name, last_name, company, phone, avatar_url, custom_fields"
        " FROM contacts WHERE workspace_id = $1",
        uuid.UUID(workspace_id),
    )
    return {r["email"]: dict(r) for r in rows}


async def run(owner: asyncpg.Pool, workspace_id: str, mapping: list[str],
              cells: list[list[str]], avatars: dict[str, str | None] | None = None,
              ) -> Upserted:  # fmt: skip
    mapper = Mapper(mapping)
    items = [(i + 2, c, c[0].strip().lower()) for i, c in enumerate(cells)]
    _, values, failures = mapper.map(items)
    assert failures == []
    async with tenant_tx(owner, workspace_id) as conn:
        return await upsert(conn, workspace_id, mapper.custom_keys, values, avatars or {})


async def test_separator_in_a_value_falls_back_to_arrays(
    owner_pool: asyncpg.Pool, tenant: Tenant
) -> None:
    mapping = ["email", "first_name", "company", "custom:note"]
    cells = [
        ["a@example.com", f"Ann{SEP}Marie", "", f"x{SEP}y"],
        ["b@example.com", "Bob", "Acme", ""],
    ]
    assert await run(owner_pool, tenant.workspace_id, mapping, cells) == (2, 0, 0)
    got = await stored(owner_pool, tenant.workspace_id)
    assert got["a@example.com"]["first_name"] == f"Ann{SEP}Marie"
    assert got["a@example.com"]["company"] is None
    assert got["a@example.com"]["custom_fields"] == {"note": f"x{SEP}y"}
    assert got["b@example.com"]["company"] == "Acme"
    assert got["b@example.com"]["custom_fields"] == {}


async def test_one_row_of_empty_values_keeps_its_columns(
    owner_pool: asyncpg.Pool, tenant: Tenant
) -> None:
    mapping = ["email", "first_name", "last_name", "custom:plan"]
    await run(owner_pool, tenant.workspace_id, mapping, [["c@example.com", "Cy", "Old", "pro"]])
    # A re-import with every other cell empty keeps what is stored (COALESCE, merge).
    assert await run(owner_pool, tenant.workspace_id, mapping, [["c@example.com", "", "", ""]],
                     {"c@example.com": "https://avatar/c"}) == (0, 1, 0)  # fmt: skip
    got = (await stored(owner_pool, tenant.workspace_id))["c@example.com"]
    assert (got["first_name"], got["last_name"]) == ("Cy", "Old")
    assert got["avatar_url"] == "https://avatar/c"
    assert got["custom_fields"] == {"plan": "pro"}


async def test_wide_files_send_custom_fields_as_json(
    owner_pool: asyncpg.Pool, tenant: Tenant
) -> None:
    width = MAX_CUSTOM_COLUMNS + 6
    mapping = ["email", *(f"custom:k{i}" for i in range(width))]
    cells = [
        ["w1@example.com", *(f"v{i}" if i % 2 else "" for i in range(width))],
        ["w2@example.com", *(f"a{SEP}{i}" for i in range(width))],
    ]
    assert await run(owner_pool, tenant.workspace_id, mapping, cells) == (2, 0, 0)
    got = await stored(owner_pool, tenant.workspace_id)
    assert got["w1@example.com"]["custom_fields"] == {f"k{i}": f"v{i}" for i in range(1, width, 2)}
    assert got["w2@example.com"]["custom_fields"] == {f"k{i}": f"a{SEP}{i}" for i in range(width)}


async def test_unchanged_rows_are_counted_apart_and_not_written(
    owner_pool: asyncpg.Pool, tenant: Tenant
) -> None:
    """A row that would leave its contact as stored (tags included: an import only adds
    them) is unchanged, and its updated_at stays; one new value or one new tag is an update.
    With Gravatar on, an unchanged contact is still owed its lookup by the newest import."""
    ws = tenant.workspace_id
    mapping = ["email", "first_name", "tags", "custom:plan"]
    first = [["a@example.com", "Ann", "vip; lead", "pro"], ["b@example.com", "Bo", "", ""]]
    assert await run(owner_pool, ws, mapping, first) == (2, 0, 0)
    when = "SELECT email, updated_at FROM contacts WHERE workspace_id = $1::uuid ORDER BY email"
    before = await owner_pool.fetch(when, ws)
    tagged = (
        "SELECT c.email, array_agg(t.name ORDER BY t.name) FROM contacts c"
        " JOIN contact_tags x ON x.contact_id = c.id JOIN tags t ON t.id = x.tag_id"
        " WHERE c.workspace_id = $1::uuid GROUP BY c.email"
    )
    assert dict(await owner_pool.fetch(tagged, ws)) == {"a@example.com": ["lead", "vip"]}

    # The same rows; fewer tags, fewer custom fields, empty cells: nothing to change.
    assert await run(owner_pool, ws, mapping, first) == (0, 0, 2)
    assert await run(owner_pool, ws, mapping, [["a@example.com", "", "lead", ""]]) == (0, 0, 1)
    assert await owner_pool.fetch(when, ws) == before

    # One new tag (created in the workspace), one new name: two updates, one unchanged.
    rows = [["a@example.com", "Ann", "vip;new", "pro"], ["b@example.com", "Bob", "", ""],
            ["c@example.com", "Cy", "new", ""]]  # fmt: skip
    assert await run(owner_pool, ws, mapping, rows) == (1, 2, 0)
    assert dict(await owner_pool.fetch(tagged, ws)) == {
        "a@example.com": ["lead", "new", "vip"], "c@example.com": ["new"]}  # fmt: skip
    after = dict(await owner_pool.fetch(when, ws))
    assert all(after[e] > t for e, t in before)
    names = await owner_pool.fetch("SELECT name FROM tags WHERE workspace_id = $1::uuid", ws)
    assert sorted(r["name"] for r in names) == ["lead", "new", "vip"]

    owner = str(uuid.uuid4())
    mapper = Mapper(mapping)
    _, values, _ = mapper.map([(2, rows[1], "b@example.com")])
    async with tenant_tx(owner_pool, ws) as conn:
        assert await upsert(conn, ws, mapper.custom_keys, values, {}, owner) == (0, 0, 1)
    pending = (
        "SELECT avatar_pending::text FROM contacts WHERE workspace_id = $1::uuid AND email = $2"
    )
    assert await owner_pool.fetchval(pending, ws, "b@example.com") == owner
    assert dict(await owner_pool.fetch(when, ws)) == after
