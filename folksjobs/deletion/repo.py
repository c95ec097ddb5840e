"""SQL of workspace and user deletion (workspace/deleted, user/deleted).

Every statement can run again after a crash and finds only what is left: a deletion is
marked first (deleted_at), rows go in committed batches, the workspace row goes last and
its ON DELETE CASCADE takes whatever a racing writer added meanwhile.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from folksjobs.infra.db import tenant_tx
from folksjobs.models import avatars_workflow_id, export_workflow_id, import_workflow_id

# A workspace's tenant tables, in the order their rows are deleted: children before the
# rows they reference, so no batch waits on a cascade it did not ask for. The workspace
# row's own delete (delete_workspace_row) then cascades to anything a racing writer added.
WORKSPACE_TABLES = (
    "contact_tags",
    "contacts",
    "import_batches",
    "imports",
    "exports",
    "tags",
    "digest_sends",
    "workspace_settings",
    "api_keys",
    "workspace_members",
)
# Only the jobs that act on a workspace's data are cancelled (the gate idles out alone).
_RUNNING_IMPORT = "status IN ('pending', 'processing')"
_RUNNING_EXPORT = "status IN ('pending', 'processing')"


class NotTheOwner(PermissionError):
    """workspace/deleted named a user who does not own the workspace."""


@dataclass(frozen=True)
class Marked:
    contacts: int
    imports: int
    exports: int


async def mark_workspace_deleted(
    pool: asyncpg.Pool, workspace_id: str, user_id: str
) -> Marked | None:
    """Mark the workspace deleted (it leaves the digest, and no one can call its API again:
    its keys go here) and count what it holds; None when it does not exist (any more).

    NotTheOwner unless `user_id` owns it: checked on every attempt, before anything."""
    ws = uuid.UUID(workspace_id)
    async with pool.acquire() as conn, conn.transaction():
        owner = await conn.fetchval(
            "SELECT owner_user_id FROM workspaces WHERE id = $1 FOR UPDATE", ws
        )
        if owner is None:
            return None
        if str(owner) != user_id:
            raise NotTheOwner(
                f"user {user_id} is not the owner of workspace {workspace_id}:"
                " only its owner may delete it"
            )
        await conn.execute(
            "UPDATE workspaces SET deleted_at = coalesce(deleted_at, now()), active = false"
            " WHERE id = $1",
            ws,
        )
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute("DELETE FROM api_keys WHERE workspace_id = $1", ws)
        counts = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM contacts WHERE workspace_id = $1) AS contacts,"
            " (SELECT count(*) FROM imports WHERE workspace_id = $1) AS imports,"
            " (SELECT count(*) FROM exports WHERE workspace_id = $1) AS exports",
            ws,
        )
    assert counts is not None
    return Marked(counts["contacts"], counts["imports"], counts["exports"])


async def being_deleted(pool: asyncpg.Pool, workspace_id: str) -> bool:
    """Whether workspace/deleted has begun for the workspace (it starts nothing new)."""
    return bool(
        await pool.fetchval(
            "SELECT deleted_at IS NOT NULL FROM workspaces WHERE id = $1",
            uuid.UUID(workspace_id),
        )
    )


async def running_job_ids(
    pool: asyncpg.Pool, workspace_id: str, user_id: str | None = None
) -> list[str]:
    """Workflow ids of the workspace's imports and exports that may have a run (only those
    `user_id` started, when given), from their records. A pending import may have one: it
    was confirmed and its run has not claimed it yet."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            f"SELECT 'import' AS kind, id, workflow_id FROM imports WHERE workspace_id = $1"
            f" AND {_RUNNING_IMPORT} AND ($2::uuid IS NULL OR user_id = $2)"
            " UNION ALL"
            f" SELECT 'export', id, NULL FROM exports WHERE workspace_id = $1"
            f" AND {_RUNNING_EXPORT} AND ($2::uuid IS NULL OR user_id = $2)",
            uuid.UUID(workspace_id),
            uuid.UUID(user_id) if user_id else None,
        )
    return [
        r["workflow_id"]
        or (import_workflow_id if r["kind"] == "import" else export_workflow_id)(str(r["id"]))
        for r in rows
    ]


async def avatar_job_ids(pool: asyncpg.Pool, workspace_id: str) -> list[str]:
    """Workflow ids of the avatars jobs that may still run for the workspace: one per
    import still owed a lookup. Such a job outlives its import (parent-close ABANDON), so
    the import's record no longer names it."""
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT avatar_pending FROM contacts"
            " WHERE workspace_id = $1 AND avatar_pending IS NOT NULL",
            uuid.UUID(workspace_id),
        )
    return [avatars_workflow_id(str(r["avatar_pending"])) for r in rows]


async def pending_upload_ids(
    pool: asyncpg.Pool, workspace_id: str, user_id: str | None = None
) -> list[str]:
    async with tenant_tx(pool, workspace_id) as conn:
        rows = await conn.fetch(
            "SELECT id FROM imports WHERE workspace_id = $1 AND status = 'pending'"
            " AND ($2::uuid IS NULL OR user_id = $2) ORDER BY created_at",
            uuid.UUID(workspace_id),
            uuid.UUID(user_id) if user_id else None,
        )
    return [str(r["id"]) for r in rows]


async def delete_batch(pool: asyncpg.Pool, workspace_id: str, table: str, limit: int) -> int:
    """Delete up to `limit` of the workspace's rows of `table`, committed; the number gone."""
    if table not in WORKSPACE_TABLES:
        raise ValueError(f"{table!r} is not a workspace table")
    async with tenant_tx(pool, workspace_id) as conn:
        status = await conn.execute(
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM {table} WHERE workspace_id = $1 LIMIT $2))",
            uuid.UUID(workspace_id),
            limit,
        )
    return int(status.split()[-1])


async def delete_workspace_row(pool: asyncpg.Pool, workspace_id: str) -> int:
    """The workspace row, last; its cascade takes any row written since the batches."""
    status = await pool.execute("DELETE FROM workspaces WHERE id = $1", uuid.UUID(workspace_id))
    return int(status.split()[-1])


# --- users ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OwnedWorkspaces:
    sole: list[str]  # no one else belongs to them: deleted with the user
    shared: list[str]  # other members: left in place, reported


async def mark_user_deleted(pool: asyncpg.Pool, user_id: str) -> OwnedWorkspaces | None:
    """Erase the user's address and name and mark them deleted (no email can reach them
    from here on), and list the workspaces they own; None for an unknown user."""
    uid = uuid.UUID(user_id)
    async with pool.acquire() as conn, conn.transaction():
        found = await conn.fetchval(
            "UPDATE users SET deleted_at = coalesce(deleted_at, now()), email = '', name = NULL"
            " WHERE id = $1 RETURNING 1",
            uid,
        )
        if not found:
            return None
        rows = await conn.fetch(
            "SELECT w.id, EXISTS (SELECT 1 FROM workspace_members m JOIN users u"
            "   ON u.id = m.user_id AND u.deleted_at IS NULL"
            "   WHERE m.workspace_id = w.id AND m.user_id <> w.owner_user_id) AS shared"
            " FROM workspaces w WHERE w.owner_user_id = $1 ORDER BY w.id",
            uid,
        )
    return OwnedWorkspaces(
        sole=[str(r["id"]) for r in rows if not r["shared"]],
        shared=[str(r["id"]) for r in rows if r["shared"]],
    )


async def workspaces_of(pool: asyncpg.Pool, user_id: str) -> list[str]:
    """Every workspace the user owns or belongs to."""
    rows = await pool.fetch(
        "SELECT id FROM workspaces WHERE owner_user_id = $1"
        " UNION SELECT workspace_id FROM workspace_members WHERE user_id = $1",
        uuid.UUID(user_id),
    )
    return sorted(str(r[0]) for r in rows)


async def remove_memberships(pool: asyncpg.Pool, user_id: str) -> int:
    status = await pool.execute(
        "DELETE FROM workspace_members WHERE user_id = $1", uuid.UUID(user_id)
    )
    return int(status.split()[-1])
