"""PostgreSQL access: the pool, tenant-scoped transactions and the migrator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import asyncpg

APP_ROLE = "folksjobs_app"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose sessions run as the application role, so row-level security applies.

    The role is a startup setting rather than a `SET ROLE`, so asyncpg's `RESET ALL` on
    release returns the session to it instead of to the (owner) login user.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        server_settings={"role": APP_ROLE, "application_name": "folksjobs"},
    )
    assert pool is not None
    return pool


async def create_owner_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    """A pool as the login user (schema owner): migrations, seeding, cross-tenant reads."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=_init_connection)
    assert pool is not None
    return pool


def _closed(conn: asyncpg.Connection) -> bool:
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        # Terminated inside the block (exports.copy_rows): the pool took it back already,
        # and the caller's own error (a cancellation) is the one to raise.
        return True


@asynccontextmanager
async def tenant_tx(pool: asyncpg.Pool, workspace_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that sees only `workspace_id`'s rows (row-level security).

    A connection that closed inside it (a crashed server, one terminated after a failed
    COPY) has no transaction left to roll back: the error that closed it is the one raised.
    """
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            await conn.execute("SELECT set_config('app.workspace_id', $1, true)", str(workspace_id))
            yield conn
        except BaseException:
            if not _closed(conn):
                await tx.rollback()
            raise
        await tx.commit()


def _migrations() -> list[tuple[str, Traversable]]:
    files = (
        f for f in resources.files("folksjobs.migrations").iterdir() if f.name.endswith(".sql")
    )
    return sorted(((f.name.removesuffix(".sql"), f) for f in files), key=lambda m: m[0])


async def pending_migrations(dsn: str) -> list[str]:
    """This build's migrations the database has not recorded (all of them on a new one)."""
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = (
            {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            if exists
            else set()
        )
    finally:
        await conn.close()
    return [v for v, _ in _migrations() if v not in done]


async def wait_for_migrations(dsn: str, interval: float = 2.0) -> None:
    """Return once every migration of this build is applied; never applies one itself.

    A new release's workers wait here (their init container, deploy/k8s/worker.yaml) for
    the release's setup Job, so no worker of the new code takes work on the old schema.
    """
    # Another process applies them; asking again is all there is to do.
    while await pending_migrations(dsn):  # noqa: ASYNC110
        await asyncio.sleep(interval)


async def migrate(dsn: str) -> list[str]:
    """Apply every `migrations/NNNN_*.sql` not yet recorded; returns the versions applied.

    An advisory lock makes concurrent migrators (two workers starting) wait for each other.
    """
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock(727001)")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, f in _migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(f.read_text(encoding="utf-8"))
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
            applied.append(version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock(727001)")
        await conn.close()
    return applied


async def change_with_file(
    pool: asyncpg.Pool,
    workspace_id: str,
    delete_file: Callable[[str], Awaitable[None]],
    sql: str,
    *args: Any,
) -> bool:
    """Runs `sql`, which changes one record and returns its file's blob key, and deletes
    that file inside the same transaction: when the file cannot be deleted the change rolls
    back, so the record never says a file is gone that is still there. False when `sql`
    matched no record."""
    async with tenant_tx(pool, workspace_id) as conn:
        key = await conn.fetchval(sql, *args)
        if key is None:
            return False
        await delete_file(key)
    return True
