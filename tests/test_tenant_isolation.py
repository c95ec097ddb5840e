"""Tenants stay apart: row-level security is a real second wall (the application role
cannot cross workspaces even when a query names the other one outright), and two
workspaces' imports and exports running side by side with overlapping emails never see
or change each other's rows.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from folksjobs.exports import repo as exports
from folksjobs.imports import lifecycle
from folksjobs.infra import db
from folksjobs.models import (
    WF_PROCESS_CSV,
    WF_PROCESS_EXPORT,
    ProcessCsvInput,
    ProcessExportInput,
    export_workflow_id,
    import_workflow_id,
)
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, upload

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


# --- the jobs side by side ------------------------------------------------------------


def tenant_file(name: str, n: int) -> list[list[str]]:
    """`n` rows of this tenant's own, plus the same shared emails as the other tenant."""
    own = [[f"{name.lower()}{i}@example.com", f"{name}-{i}", name] for i in range(n)]
    shared = [[f"shared{i}@example.com", f"{name}-shared-{i}", name] for i in range(5)]
    return [["email", "first_name", "company"], *own, *shared]


async def test_imports_and_exports_side_by_side_stay_apart(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str,
    two_tenants: tuple[Tenant, Tenant],
) -> None:  # fmt: skip
    a, b = two_tenants
    settings = make_settings(stack, temporal_task_queue=task_queue, import_chunk_rows=7,
                             import_sub_batch_rows=3)  # fmt: skip
    files = {a.workspace_id: tenant_file("A", 40), b.workspace_id: tenant_file("B", 30)}
    async with running_worker(client, settings, task_queue) as services:

        async def run_import(t: Tenant) -> dict[str, Any]:
            up = await upload(services, settings, t.workspace_id, t.user_id,
                              csv_bytes(files[t.workspace_id]))  # fmt: skip
            handle = await confirm_import(client, services.pool, settings, t.workspace_id,
                                          up.import_id)  # fmt: skip
            result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
            return result

        async def run_export(t: Tenant) -> bytes:
            export_id, user = await exports.create_export(services.pool, t.workspace_id, None, [])
            result = await client.execute_workflow(
                WF_PROCESS_EXPORT,
                ProcessExportInput(export_id=export_id, workspace_id=t.workspace_id,
                                   user_id=user),
                id=export_workflow_id(export_id), task_queue=task_queue,
            )  # fmt: skip
            return b"".join([c async for c in services.blob.read(result["blob_key"])])

        ra, rb = await asyncio.gather(run_import(a), run_import(b))
        fa, fb = await asyncio.gather(run_export(a), run_export(b))
    # The shared emails are inserts in both workspaces: neither upsert met the other's row.
    assert (ra["inserted"], ra["updated"]) == (45, 0)  # 40 own + 5 shared
    assert (rb["inserted"], rb["updated"]) == (35, 0)
    for t, f, name in ((a, fa, "A"), (b, fb, "B")):
        stored = await owner_pool.fetch(
            "SELECT email, first_name, company FROM contacts WHERE workspace_id = $1",
            uuid.UUID(t.workspace_id),
        )  # fmt: skip
        expected: set[tuple[str, str, str | None]] = {
            (r[0], r[1], r[2]) for r in files[t.workspace_id][1:]
        }
        expected.add((SHARED, name, None))  # seeded by the fixture
        assert {(r["email"], r["first_name"], r["company"]) for r in stored} == expected
        exported = list(csv.DictReader(io.StringIO(f.decode("utf-8-sig"))))
        assert {row["email"] for row in exported} == {e for e, _, _ in expected}
        assert {row["company"] for row in exported} <= {name, ""}


async def test_a_workspace_pairing_from_the_caller_is_not_trusted(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, task_queue: str,
    two_tenants: tuple[Tenant, Tenant],
) -> None:  # fmt: skip
    """An import or export id started with the other workspace's id fails and touches
    nothing: activities look the record up within the workspace they were given."""
    a, b = two_tenants
    settings = make_settings(stack, temporal_task_queue=task_queue)
    async with running_worker(client, settings, task_queue) as services:
        up = await upload(services, settings, a.workspace_id, a.user_id,
                          csv_bytes(tenant_file("A", 3)))  # fmt: skip
        await lifecycle.claim(services.pool, a.workspace_id, up.import_id, a.user_id,
                              import_workflow_id(up.import_id))  # fmt: skip
        with pytest.raises(WorkflowFailureError) as imp:
            await client.execute_workflow(
                WF_PROCESS_CSV,
                ProcessCsvInput(import_id=up.import_id, workspace_id=b.workspace_id,
                                user_id=b.user_id),
                id=import_workflow_id(up.import_id), task_queue=task_queue,
            )  # fmt: skip
        export_id, _ = await exports.create_export(services.pool, a.workspace_id, None, [])
        with pytest.raises(WorkflowFailureError) as exp:
            await client.execute_workflow(
                WF_PROCESS_EXPORT,
                ProcessExportInput(export_id=export_id, workspace_id=b.workspace_id,
                                   user_id=b.user_id),
                id=export_workflow_id(export_id), task_queue=task_queue,
            )  # fmt: skip
    assert "not found" in str(imp.value.cause) + str(getattr(imp.value.cause, "cause", ""))
    assert "does not exist in workspace" in str(getattr(exp.value.cause, "cause", ""))
    for t, n in ((a, 1), (b, 1)):  # only the fixture's seeded contact in each
        assert await owner_pool.fetchval(
            "SELECT count(*) FROM contacts WHERE workspace_id = $1", uuid.UUID(t.workspace_id)
        ) == n  # fmt: skip
    status = await owner_pool.fetchval("SELECT status FROM imports WHERE id = $1::uuid",
                                       up.import_id)  # fmt: skip
    assert status == "processing"  # B's run could not even mark A's import failed
