"""The user directory and workspace lookups (spec: "Supabase user lookup").

Users are looked up by user id, never by workspace id (spec 001 "Event Data Convention").
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str | None


class UserNotFound(LookupError):
    pass


class UserDeleted(UserNotFound):
    """The user was deleted (user/deleted): their address is erased, nothing is sent to
    them. Jobs that would email them skip it; a job that needs them fails as for an
    unknown user."""


async def get_user(pool: asyncpg.Pool, user_id: str) -> User:
    row = await pool.fetchrow(
        "SELECT id, email, name, deleted_at FROM users WHERE id = $1::uuid", user_id
    )
    if row is None:
        raise UserNotFound(f"user {user_id} not found in the user directory")
    if row["deleted_at"] is not None:
        raise UserDeleted(f"user {user_id} was deleted")
    return User(id=str(row["id"]), email=row["email"], name=row["name"])


async def register_user(pool: asyncpg.Pool, user_id: str, email: str, name: str | None) -> None:
    """A user the directory does not know yet (user/signed.up with its address); a known
    user keeps the row it has."""
    await pool.execute(
        "INSERT INTO users (id, email, name) VALUES ($1::uuid, $2, $3) ON CONFLICT (id) DO NOTHING",
        user_id,
        email,
        name,
    )


class WorkspaceNotFound(LookupError):
    pass


async def workspace_owner(pool: asyncpg.Pool, workspace_id: str) -> str:
    """The workspace owner's user id: who an import or export acts for when no user is named."""
    try:
        wid = uuid.UUID(workspace_id)
    except ValueError as e:
        raise WorkspaceNotFound(f"workspace id {workspace_id!r} is not a UUID") from e
    owner = await pool.fetchval("SELECT owner_user_id FROM workspaces WHERE id = $1", wid)
    if owner is None:
        raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
    return str(owner)


class NotAMember(PermissionError):
    """The user id a caller named does not belong to the workspace it named."""


async def require_member(pool: asyncpg.Pool, workspace_id: str, user_id: str) -> None:
    """Raise NotAMember unless the workspace exists and `user_id` belongs to it.

    Members are the owner and the users in workspace_members. Called wherever a user id
    meets a workspace id, before anything is written or sent.
    """
    row = await pool.fetchrow(
        """SELECT w.owner_user_id = $2::uuid OR EXISTS (
                   SELECT 1 FROM workspace_members m
                   WHERE m.workspace_id = w.id AND m.user_id = $2::uuid) AS member
           FROM workspaces w WHERE w.id = $1::uuid""",
        workspace_id,
        user_id,
    )
    if row is None:
        raise NotAMember(f"workspace {workspace_id} does not exist")
    if not row["member"]:
        raise NotAMember(f"user {user_id} is not a member of workspace {workspace_id}")
