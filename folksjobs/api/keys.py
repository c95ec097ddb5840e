"""API keys: created and shown once, stored as their SHA-256, looked up by that hash.

A key is `fj_` plus 256 random bits (url-safe base64). Its workspace comes from its row,
never from the request. A `service` key may only send events; a `workspace` key may call
every route of its workspace. The table is guarded by row-level security like the others;
the lookup by hash is the one read without a workspace (migration 0003's `key_lookup`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from folksjobs.infra.db import tenant_tx

KEY_PREFIX = "fj_"
# Characters of the key kept in clear, so a person can tell their keys apart in a list.
SHOWN_CHARS = 10

KeyKind = Literal["workspace", "service"]


class UnknownKey(LookupError):
    """A workspace or key that does not exist."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    workspace_id: str
    name: str
    kind: KeyKind
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, r: asyncpg.Record) -> ApiKey:
        return cls(
            str(r["id"]),
            str(r["workspace_id"]),
            r["name"],
            r["kind"],
            r["prefix"],
            r["created_at"],
            r["revoked_at"],
        )


_COLUMNS = "id, workspace_id, name, kind, prefix, created_at, revoked_at"


def hash_key(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


async def create(
    pool: asyncpg.Pool, workspace_id: str, name: str = "", kind: KeyKind = "workspace"
) -> tuple[ApiKey, str]:
    """A new key and its secret; the secret exists only in this return value."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        async with tenant_tx(pool, workspace_id) as conn:
            r = await conn.fetchrow(
                f"""INSERT INTO api_keys (id, workspace_id, name, kind, key_hash, prefix)
                    VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",
                uuid.uuid4(),
                uuid.UUID(workspace_id),
                name,
                kind,
                hash_key(secret),
                secret[:SHOWN_CHARS],
            )
    except asyncpg.ForeignKeyViolationError:
        raise UnknownKey(f"workspace {workspace_id} does not exist") from None
    assert r is not None
    return ApiKey.from_record(r), secret


async def authenticate(pool: asyncpg.Pool, secret: str) -> ApiKey | None:
    """The live key for this secret, or None (unknown, malformed or revoked alike)."""
    if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT set_config('app.api_key_hash', $1, true)", hash_key(secret).hex()
        )
        r = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hash_key(secret),
        )
    return ApiKey.from_record(r) if r else None


async def list_keys(owner: asyncpg.Pool, workspace_id: str | None = None) -> list[ApiKey]:
    """Every key (of one workspace): the operator's view, through the owner pool."""
    rows = await owner.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE $1::uuid IS NULL OR workspace_id = $1"
        " ORDER BY created_at",
        uuid.UUID(workspace_id) if workspace_id else None,
    )
    return [ApiKey.from_record(r) for r in rows]


async def revoke(owner: asyncpg.Pool, key_id: str) -> ApiKey:
    """Revokes at once: the next request with that key is refused. Idempotent."""
    try:
        kid = uuid.UUID(key_id)
    except ValueError:
        raise UnknownKey(f"key id {key_id!r} is not a UUID") from None
    r = await owner.fetchrow(
        f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1"
        f" RETURNING {_COLUMNS}",
        kid,
    )
    if r is None:
        raise UnknownKey(f"no API key {key_id}")
    return ApiKey.from_record(r)
