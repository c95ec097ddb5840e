"""The user directory (spec: "Supabase user lookup"): who a user is and where an email goes.

Users are looked up by user id, never by workspace id (spec 001 "Event Data Convention");
which workspaces a user belongs to is `folksjobs.tenancy`'s question.
"""

from __future__ import annotations

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
