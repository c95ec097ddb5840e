"""Row-level security is a real second wall: the application role cannot cross tenants
even when a query names the other workspace outright.

The side-by-side test (two workspaces' imports and exports running at once with
overlapping emails) belongs with those jobs: see the note at the end of this file.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from folksjobs import db, seed
from tests.conftest import Tenant

SHARED = "same.person@example.com"


@pytest.fixture
async def app_pool(migrated: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(migrated, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def two_tenants(owner_pool: asyncpg.Pool) -> tuple[Tenant, Tenant]:
    out = []
    for name in ("A", "B"):
        email = f"owner-{name}-{uuid.uuid4().hex[:8]}@example.com"
        uid = await seed.create_user(owner_pool, email)
        wid = await seed.create_workspace(owner_pool, uid, f"Workspace {name}")
        # Both hold the same email: only the workspace tells the rows apart.
        await owner_pool.execute(
            "INSERT INTO contacts (workspace_id, email, first_name) VALUES ($1, $2, $3)",
            uuid.UUID(wid), SHARED, name,
        )  # fmt: skip
        out.append(Tenant(uid, wid, email))
    return out[0], out[1]


async def test_app_role_is_not_the_owner_and_cannot_bypass(app_pool: asyncpg.Pool) -> None:
    row = await app_pool.fetchrow(
        "SELECT current_user AS u, r.rolsuper, r.rolbypassrls FROM pg_roles r"
        " WHERE r.rolname = current_user"
    )
    assert row is not None
    assert row["u"] == db.APP_ROLE
    assert not row["rolsuper"] and not row["rolbypassrls"]
    owner = await app_pool.fetchval("SELECT tableowner FROM pg_tables WHERE tablename = 'contacts'")
    assert owner != db.APP_ROLE
    forced = await app_pool.fetch(
        "SELECT relname FROM pg_class WHERE relname = ANY($1::text[])"
        " AND relrowsecurity AND relforcerowsecurity",
        ["contacts", "tags", "contact_tags", "imports", "import_batches", "exports",
         "workspace_settings", "digest_sends"],
    )  # fmt: skip
    assert len(forced) == 8
    # The role cannot switch itself out of the wall.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await app_pool.execute("ALTER TABLE contacts DISABLE ROW LEVEL SECURITY")


async def test_without_tenant_tx_nothing_is_visible(
    app_pool: asyncpg.Pool, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    assert await app_pool.fetchval("SELECT count(*) FROM contacts") == 0
    assert await app_pool.fetchval(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1", uuid.UUID(b.workspace_id)
    ) == 0  # fmt: skip
    assert await app_pool.fetchval("SELECT count(*) FROM workspace_settings") == 0
    # Writes without a workspace touch nothing and insert nothing.
    assert await app_pool.execute("UPDATE contacts SET first_name = 'x'") == "UPDATE 0"
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        await app_pool.execute(
            "INSERT INTO contacts (workspace_id, email) VALUES ($1, 'new@example.com')",
            uuid.UUID(a.workspace_id),
        )  # fmt: skip


async def test_tenant_tx_sees_and_changes_only_its_own_rows(
    app_pool: asyncpg.Pool, owner_pool: asyncpg.Pool, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    b_id = uuid.UUID(b.workspace_id)
    async with db.tenant_tx(app_pool, a.workspace_id) as conn:
        rows = await conn.fetch("SELECT workspace_id, first_name FROM contacts")
        assert [(str(r["workspace_id"]), r["first_name"]) for r in rows] == [(a.workspace_id, "A")]
        # Naming B outright finds nothing...
        assert await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1", b_id
        ) == 0  # fmt: skip
        # ...and changes nothing.
        assert await conn.execute(
            "UPDATE contacts SET first_name = 'hijacked' WHERE workspace_id = $1", b_id
        ) == "UPDATE 0"  # fmt: skip
        assert await conn.execute(
            "DELETE FROM contacts WHERE workspace_id = $1 AND email = $2", b_id, SHARED
        ) == "DELETE 0"  # fmt: skip
        # An upsert on the shared email only ever meets A's row.
        await conn.execute(
            "INSERT INTO contacts (workspace_id, email, first_name) VALUES ($1, $2, 'A2')"
            " ON CONFLICT (workspace_id, email) DO UPDATE SET first_name = EXCLUDED.first_name",
            uuid.UUID(a.workspace_id), SHARED,
        )  # fmt: skip
        # Moving one's own row into B is refused by WITH CHECK (in a savepoint, so the
        # refusal does not roll the upsert above back with it).
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await conn.execute("UPDATE contacts SET workspace_id = $1", b_id)
    rows = await owner_pool.fetch(
        "SELECT workspace_id, first_name FROM contacts WHERE workspace_id = ANY($1::uuid[])",
        [uuid.UUID(a.workspace_id), b_id],
    )  # fmt: skip
    assert sorted((str(r["workspace_id"]), r["first_name"]) for r in rows) == sorted(
        [(a.workspace_id, "A2"), (b.workspace_id, "B")]
    )


async def test_insert_for_another_workspace_is_refused(
    app_pool: asyncpg.Pool, owner_pool: asyncpg.Pool, two_tenants: tuple[Tenant, Tenant]
) -> None:
    a, b = two_tenants
    b_id = uuid.UUID(b.workspace_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with db.tenant_tx(app_pool, a.workspace_id) as conn:
            await conn.execute(
                "INSERT INTO contacts (workspace_id, email) VALUES ($1, 'planted@example.com')",
                b_id,
            )  # fmt: skip
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with db.tenant_tx(app_pool, a.workspace_id) as conn:
            await conn.execute(
                "INSERT INTO imports (id, workspace_id, user_id, file_name, blob_key)"
                " VALUES ($1, $2, $3, 'x.csv', 'k')",
                uuid.uuid4(), b_id, uuid.UUID(a.user_id),
            )  # fmt: skip
    assert await owner_pool.fetchval(
        "SELECT count(*) FROM contacts WHERE workspace_id = $1", b_id
    ) == 1  # fmt: skip


async def test_workspace_setting_does_not_leak_between_transactions(
    app_pool: asyncpg.Pool, two_tenants: tuple[Tenant, Tenant]
) -> None:
    """set_config(..., true) is transaction-local: a pooled connection forgets it."""
    a, _ = two_tenants
    async with db.tenant_tx(app_pool, a.workspace_id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM contacts") == 1
    async with app_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM contacts") == 0
        assert await conn.fetchval("SELECT current_user") == db.APP_ROLE


# Later, with the import and export jobs: two workspaces' imports and exports side by side
# with overlapping emails, each workspace's contacts and export file exactly its own.
