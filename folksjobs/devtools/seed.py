"""Demo and test data: a workspace, its owner and its settings, and tagged contacts, so
every command of the README's walk-through has something to act on (idempotent by id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

DEMO_USER_ID = "00000000-0000-4000-8000-000000000001"
DEMO_WORKSPACE_ID = "00000000-0000-4000-8000-0000000000a1"


# Tags the README's commands name (`export --tag vip`), and who carries them.
DEMO_TAGS = {
    "vip": ["ada.lovelace@example.com", "grace.hopper@example.com"],
    "newsletter": ["ada.lovelace@example.com", "alan.turing@example.com"],
}


@dataclass(frozen=True)
class Seeded:
    user_id: str
    workspace_id: str
    tags: dict[str, int]  # tag name -> contacts carrying it


async def create_user(
    owner: asyncpg.Pool, email: str, name: str | None = None, user_id: str | None = None
) -> str:
    uid = user_id or str(uuid.uuid4())
    await owner.execute(
        "INSERT INTO users (id, email, name) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name",
        uuid.UUID(uid),
        email,
        name,
    )
    return uid


async def create_workspace(
    owner: asyncpg.Pool,
    owner_user_id: str,
    name: str = "Demo workspace",
    workspace_id: str | None = None,
    *,
    notify_on_export_complete: bool = True,
    notify_weekly_digest: bool = True,
    notify_on_import_complete: bool = True,
) -> str:
    wid = workspace_id or str(uuid.uuid4())
    async with owner.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO workspaces (id, name, owner_user_id) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            uuid.UUID(wid),
            name,
            uuid.UUID(owner_user_id),
        )
        await conn.execute(
            "INSERT INTO workspace_settings (workspace_id, notify_on_export_complete,"
            " notify_weekly_digest, notify_on_import_complete) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (workspace_id) DO UPDATE SET"
            " notify_on_export_complete = EXCLUDED.notify_on_export_complete,"
            " notify_weekly_digest = EXCLUDED.notify_weekly_digest,"
            " notify_on_import_complete = EXCLUDED.notify_on_import_complete",
            uuid.UUID(wid),
            notify_on_export_complete,
            notify_weekly_digest,
            notify_on_import_complete,
        )
    return wid


async def add_member(owner: asyncpg.Pool, workspace_id: str, user_id: str) -> None:
    """`user_id` belongs to the workspace (besides its owner): jobs may email them."""
    await owner.execute(
        "INSERT INTO workspace_members (workspace_id, user_id) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        uuid.UUID(workspace_id),
        uuid.UUID(user_id),
    )


async def tag_contacts(owner: asyncpg.Pool, workspace_id: str, tags: dict[str, list[str]]) -> None:
    """Create the contacts (first name from the address) and tags, and tag them; a second
    call changes nothing. A tag id is derived from the workspace and name, so it is stable."""
    ws = uuid.UUID(workspace_id)
    async with owner.acquire() as conn, conn.transaction():
        for name, emails in tags.items():
            tag_id = uuid.uuid5(ws, f"tag:{name}")
            await conn.execute(
                "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2, $3)"
                " ON CONFLICT (workspace_id, name) DO NOTHING",
                tag_id,
                ws,
                name,
            )
            for email in emails:
                contact = await conn.fetchval(
                    "INSERT INTO contacts (workspace_id, email, first_name) VALUES ($1, $2, $3)"
                    " ON CONFLICT (workspace_id, email) DO UPDATE SET email = EXCLUDED.email"
                    " RETURNING id",
                    ws,
                    email,
                    email.split(".", 1)[0].title(),
                )
                await conn.execute(
                    "INSERT INTO contact_tags (workspace_id, contact_id, tag_id)"
                    " SELECT $1, $2, id FROM tags WHERE workspace_id = $1 AND name = $3"
                    " ON CONFLICT DO NOTHING",
                    ws,
                    contact,
                    name,
                )


async def seed_demo(owner: asyncpg.Pool) -> Seeded:
    uid = await create_user(owner, "demo.owner@example.com", "Demo Owner", DEMO_USER_ID)
    wid = await create_workspace(owner, uid, "Demo workspace", DEMO_WORKSPACE_ID)
    await tag_contacts(owner, wid, DEMO_TAGS)
    return Seeded(user_id=uid, workspace_id=wid, tags={k: len(v) for k, v in DEMO_TAGS.items()})
