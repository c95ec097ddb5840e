"""Every state change of an import record, in one place: the SQL is in `repo`, the callers
are here. A record moves

    (upload) pending --save_mapping--> pending --claim--> processing
    processing --progress (each ledger row)--> processing --complete--> completed
    processing --end--> failed | cancelled          pending --discard--> (deleted)

`claim` is the one way to processing, and the run's first step calls it, whoever started
the run (our confirm, or another service over gRPC): so it is also the one place that
checks what a run needs (the user is a member, the state, an email column mapped).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from folksjobs.imports import repo
from folksjobs.imports.mapping import validate_mapping
from folksjobs.imports.repo import ImportRow, Totals
from folksjobs.tenancy import NotAMember, require_member


class ClaimRefused(Exception):
    """The run may not have the record; the record is left as it was, so the rightful
    start (the owner's confirm, or this one once the state is fixed) can still run it."""


async def save_mapping(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, mapping: list[str]
) -> ImportRow | None:
    """A pending import's chosen mapping (checked where a person chooses it, like the
    upload's preview); the row as it now is, None when it is no longer pending."""
    validate_mapping(mapping)
    return await repo.set_mapping(pool, workspace_id, import_id, mapping)


async def claim(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, user_id: str, workflow_id: str
) -> ImportRow:
    """pending -> processing for `workflow_id`, once; the record, to pass on.

    A record this run already holds (a retry, or a confirm of before this module) is
    returned as it is. One statement on the way in; the record is read again only to
    say why nothing moved.
    """
    try:
        await require_member(pool, workspace_id, user_id)
    except NotAMember as e:
        raise ClaimRefused(str(e)) from None
    rec = await repo.claim(pool, workspace_id, import_id, workflow_id)
    if rec is not None:
        return rec
    rec = await repo.get(pool, workspace_id, import_id)
    if rec is None:
        raise ClaimRefused(f"import {import_id} not found in workspace {workspace_id}")
    if rec.status not in ("pending", "processing"):
        raise ClaimRefused(f"Invalid import state: {rec.status} (expected pending or processing)")
    if "email" not in rec.column_mapping:
        raise ClaimRefused("no column is mapped to email")
    if rec.status == "pending":
        # It was pending without its email mapped, and a confirm mapped it meanwhile.
        return await claim(pool, workspace_id, import_id, user_id, workflow_id)
    if rec.workflow_id not in (None, workflow_id):
        # One run per import: a second start under another workflow id would race the
        # first one over the same chunks and send its emails twice.
        raise ClaimRefused(f"import {import_id} is already processing by {rec.workflow_id}")
    return rec


async def progress(conn: asyncpg.Connection, **batch: Any) -> None:
    """A sub-batch's ledger row, and the record's progress set from the ledger, in the
    caller's transaction (the one that wrote the sub-batch's contacts)."""
    await repo.record_batch(conn, **batch)


async def complete(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    t: Totals,
    samples: list[dict[str, Any]],
    summary: str,
    duration_ms: int,
) -> None:
    await repo.complete(pool, workspace_id, import_id, t, samples, summary, duration_ms)


async def end(
    pool: asyncpg.Pool, workspace_id: str, import_id: str, *, cancelled: bool, error: str
) -> None:
    """failed (with the error) or cancelled; a completed import stays completed."""
    status = "cancelled" if cancelled else "failed"
    await repo.end(pool, workspace_id, import_id, status, None if cancelled else {"message": error})


async def discard(
    pool: asyncpg.Pool,
    workspace_id: str,
    import_id: str,
    delete_file: Callable[[str], Awaitable[None]],
) -> bool:
    """A pending import and its file deleted; False when it is not pending (any more)."""
    return await repo.discard_pending(pool, workspace_id, import_id, delete_file)
