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


async def get_user(pool: asyncpg.Pool, user_id: str) -> User:
    row = await pool.fetchrow("SELECT id, email, name FROM users WHERE id = $1::uuid", user_id)
    if row is None:
        raise UserNotFound(f"user {user_id} not found in the user directory")
    return User(id=str(row["id"]), email=row["email"], name=row["name"])
