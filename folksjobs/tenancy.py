"""Tenancy: which workspaces exist, who owns them and who belongs to them.

The API, events, the confirm step and the activities ask these questions here, and only
here; every other room (notify/, exports/, imports/) imports them. A workspace's members
are its owner (role `owner`) and the users in workspace_members (role `member`).
"""

from __future__ import annotations

import uuid
from typing import Literal

import asyncpg


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


Role = Literal["owner", "member"]


async def role_of(pool: asyncpg.Pool, workspace_id: str, user_id: str) -> Role | None:
    """The user's role in the workspace; None when the user does not belong to it.
    WorkspaceNotFound when there is no such workspace."""
    row = await pool.fetchrow(
        """SELECT w.owner_user_id = $2::uuid AS owner, EXISTS (
                   SELECT 1 FROM workspace_members m
                   WHERE m.workspace_id = w.id AND m.user_id = $2::uuid) AS member
           FROM workspaces w WHERE w.id = $1::uuid""",
        workspace_id,
        user_id,
    )
    if row is None:
        raise WorkspaceNotFound(f"workspace {workspace_id} does not exist")
    return "owner" if row["owner"] else "member" if row["member"] else None


async def require_member(pool: asyncpg.Pool, workspace_id: str, user_id: str) -> Role:
    """The user's role; NotAMember unless the workspace exists and `user_id` belongs to it.

    Called wherever a user id meets a workspace id, before anything is written or sent.
    """
    try:
        role = await role_of(pool, workspace_id, user_id)
    except WorkspaceNotFound as e:
        raise NotAMember(str(e)) from None
    if role is None:
        raise NotAMember(f"user {user_id} is not a member of workspace {workspace_id}")
    return role
