"""weekly-digest's pieces: the reporting week, the workspace pages, the statistics, the
per-week send ledger (digest_sends).

The week comes from the run's scheduled time T, never from a clock: the window is the 7
days [T - 7 days, T) — half-open, so consecutive weekly runs partition time (a contact
created exactly at T belongs to the next digest) — and the week it is sent for is the
Monday (UTC) of the week the window starts in. A manual trigger on a Wednesday therefore
lands on the same week as the Monday run before it: at most one digest a week.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

from folksjobs.infra.db import tenant_tx
from folksjobs.models import DigestWeek

WINDOW = timedelta(days=7)
TOP_DOMAINS = 3


def digest_week(scheduled_for: datetime) -> DigestWeek:
    if scheduled_for.tzinfo is None:
        raise ValueError(f"scheduled time {scheduled_for.isoformat()} has no time zone")
    end = scheduled_for.astimezone(UTC)
    start = end - WINDOW
    monday = start.date() - timedelta(days=start.weekday())
    return DigestWeek(week_start=monday, window_start=start, window_end=end)


async def active_workspace_page(pool: asyncpg.Pool, after: str | None, limit: int) -> list[str]:
    """Active workspace ids after `after`, in id order (keyset: no OFFSET scans).

    `workspaces` is the tenant directory itself (no row-level security), so the app role
    lists it across tenants; everything per workspace is read in that tenant's scope.
    """
    # A workspace being deleted, or whose owner was, is never in a digest again.
    rows = await pool.fetch(
        "SELECT w.id FROM workspaces w WHERE w.active AND w.deleted_at IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = w.owner_user_id"
        "   AND u.deleted_at IS NOT NULL)"
        " AND ($1::uuid IS NULL OR w.id > $1::uuid) ORDER BY w.id LIMIT $2",
        after,
        limit,
    )
    return [str(r["id"]) for r in rows]


@dataclass(frozen=True)
class WorkspaceInfo:
    name: str
    owner_user_id: str
    digest_enabled: bool


async def workspace_info(pool: asyncpg.Pool, workspace_id: str) -> WorkspaceInfo | None:
    async with tenant_tx(pool, workspace_id) as conn:
        row = await conn.fetchrow(
            "SELECT w.name, w.owner_user_id,"
            # No settings row means the defaults: the digest is on.
            " coalesce(s.notify_weekly_digest, true) AS enabled"
            " FROM workspaces w LEFT JOIN workspace_settings s ON s.workspace_id = w.id"
            " WHERE w.id = $1::uuid",
            workspace_id,
        )
    if row is None:
        return None
    return WorkspaceInfo(row["name"], str(row["owner_user_id"]), row["enabled"])


@dataclass(frozen=True)
class DigestStats:
    total_contacts: int
    new_contacts: int
    imports_completed: int
    top_domains: list[tuple[str, int]]


async def _count(pool: asyncpg.Pool, ws: str, sql: str, *args: object) -> int:
    async with tenant_tx(pool, ws) as conn:
        return int(await conn.fetchval(sql, ws, *args))


async def _total_contacts(pool: asyncpg.Pool, ws: str, week: DigestWeek) -> int:
    # As of the window's end, so a backfilled week reports the total it had then.
    return await _count(
        pool, ws,
        "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid AND created_at < $2",
        week.window_end,
    )  # fmt: skip


async def _new_contacts(pool: asyncpg.Pool, ws: str, week: DigestWeek) -> int:
    return await _count(
        pool, ws,
        "SELECT count(*) FROM contacts WHERE workspace_id = $1::uuid"
        " AND created_at >= $2 AND created_at < $3",
        week.window_start, week.window_end,
    )  # fmt: skip


async def _imports_completed(pool: asyncpg.Pool, ws: str, week: DigestWeek) -> int:
    return await _count(
        pool, ws,
        "SELECT count(*) FROM imports WHERE workspace_id = $1::uuid"
        " AND status = 'completed' AND completed_at >= $2 AND completed_at < $3",
        week.window_start, week.window_end,
    )  # fmt: skip


async def _top_domains(pool: asyncpg.Pool, ws: str, week: DigestWeek) -> list[tuple[str, int]]:
    async with tenant_tx(pool, ws) as conn:
        rows = await conn.fetch(
            "SELECT lower(split_part(email, '@', 2)) AS domain, count(*) AS n FROM contacts"
            " WHERE workspace_id = $1::uuid AND created_at >= $2 AND created_at < $3"
            " AND position('@' in email) > 0"
            # Ties broken by name, so the same data always gives the same three.
            " GROUP BY 1 ORDER BY n DESC, domain ASC LIMIT $4",
            ws,
            week.window_start,
            week.window_end,
            TOP_DOMAINS,
        )
    return [(r["domain"], int(r["n"])) for r in rows]


async def gather_stats(pool: asyncpg.Pool, workspace_id: str, week: DigestWeek) -> DigestStats:
    """The spec's four queries, run concurrently, each on its own pooled connection."""
    total, new, imports, domains = await asyncio.gather(
        _total_contacts(pool, workspace_id, week),
        _new_contacts(pool, workspace_id, week),
        _imports_completed(pool, workspace_id, week),
        _top_domains(pool, workspace_id, week),
    )
    return DigestStats(total, new, imports, domains)


SendState = Literal["sent", "claimed"]


async def send_state(pool: asyncpg.Pool, workspace_id: str, week: DigestWeek) -> SendState | None:
    async with tenant_tx(pool, workspace_id) as conn:
        status = await conn.fetchval(
            "SELECT status FROM digest_sends WHERE workspace_id = $1::uuid AND week_start = $2",
            workspace_id,
            week.week_start,
        )
    return status


async def claim(pool: asyncpg.Pool, workspace_id: str, week: DigestWeek) -> SendState:
    """Claim (workspace, week) before sending; returns the state the row is in.

    "claimed" is returned both for a fresh claim and for a claim an earlier attempt made
    and never marked sent (it crashed or timed out around the send): either way the
    caller sends, with the same idempotency key, and the provider/outbox drops the
    second copy if the first one did go out.
    """
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute(
            "INSERT INTO digest_sends (workspace_id, week_start) VALUES ($1::uuid, $2)"
            " ON CONFLICT (workspace_id, week_start) DO NOTHING",
            workspace_id,
            week.week_start,
        )
        status = await conn.fetchval(
            "SELECT status FROM digest_sends WHERE workspace_id = $1::uuid AND week_start = $2",
            workspace_id,
            week.week_start,
        )
    return "sent" if status == "sent" else "claimed"


async def mark_sent(pool: asyncpg.Pool, workspace_id: str, week: DigestWeek) -> None:
    async with tenant_tx(pool, workspace_id) as conn:
        await conn.execute(
            "UPDATE digest_sends SET status = 'sent', sent_at = now()"
            " WHERE workspace_id = $1::uuid AND week_start = $2",
            workspace_id,
            week.week_start,
        )
