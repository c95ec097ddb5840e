"""process-export safety: formula injection, the text round trip, tenants, bad requests."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from temporalio.client import (
    Client,
    WorkflowFailureError,
)

from folksjobs import errors
from folksjobs.devtools import seed
from folksjobs.exports import repo as exports
from folksjobs.exports.csvsafe import neutralise
from folksjobs.infra import db
from folksjobs.infra.blob import BlobKeyError, check_key
from folksjobs.models import WF_PROCESS_EXPORT, ProcessExportInput, export_workflow_id
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.exporting import (
    add_tag,
    contact,
    parse,
    run_export,
    seed_contacts,
)

# --- safety: injection, text round trip, tenants, keys --------------------------------

PAYLOADS = [
    "=1+1",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A2)",
    "\tTAB",
    "\rCR",
    '=HYPERLINK("http://evil","x")',
    "-",
    "+.",
    "-1e5",
    "+١٢٣",  # not ASCII digits: not a plain number to a spreadsheet either
]
HARMLESS = [
    "-12.5",
    "+14155550100",
    "-.5",
    "+7.",
    "a=b",
    'say "hi", then\nleave',
    "line\r\nbreak",
    "Zoë Ærø 日本語 🚀",
    " =not first",
    "",
]


def pg_csv(rows: Sequence[Sequence[str]], end: str) -> bytes:
    """CSV as PostgreSQL's COPY writes it (quotes only where needed), with `end`."""

    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\r\n') else v

    return "".join(",".join(map(field, r)) + end for r in rows).encode("utf-8")


def test_crlf_records_wherever_the_chunks_are_cut() -> None:
    rows = [
        ["a@example.com", "", "Ada", 'say "hi", then\nleave', "x"],
        ["b@example.com", "line\r\nbreak", '"', "", ""],
        ["c@example.com", '""\n""', ",", "\n", "日本語 🚀"],
        ["d@example.com", "plain", "", "", ""],
    ]
    lf, crlf = pg_csv(rows, "\n"), pg_csv(rows, "\r\n")
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n").writerows(rows)
    assert again.getvalue().encode("utf-8") == crlf
    for size in [1, 2, 3, 5, 7, 11, len(lf)]:
        records = exports.CrlfRecords()
        out, counts = [], []
        for i in range(0, len(lf), size):
            out.append(records(lf[i : i + size]))
            counts.append(records.records)
        assert b"".join(out) == crlf, size
        assert counts == sorted(counts) and records.records == len(rows)


def test_neutralise_rules() -> None:
    for p in PAYLOADS:
        assert neutralise(p) == "'" + p
    for h in HARMLESS:
        assert neutralise(h) == h


async def test_injection_neutralised_and_text_round_trips(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    values = PAYLOADS + HARMLESS
    await seed_contacts(
        owner_pool,
        tenant.workspace_id,
        [
            contact(f"c{i}@example.com", first_name=v, company=v, custom_fields={"note": v})
            for i, v in enumerate(values)
        ],
    )
    _, _, data = await run_export(client, make_settings(stack), task_queue, tenant.workspace_id)
    head, rows = parse(data)
    # Byte for byte what the csv module writes for these cells: quoted only where needed,
    # empty cells unquoted, CRLF after each record, line breaks inside cells kept.
    again = io.StringIO()
    csv.writer(again, lineterminator="\r\n").writerows(
        [head, *([r[h] for h in head] for r in rows)]
    )
    assert again.getvalue().encode("utf-8") == data
    # The records, the header, and the CRLF inside one value's three cells.
    assert data.count(b"\r\n") == len(values) + 1 + 3
    expected = ["'" + p for p in PAYLOADS] + HARMLESS
    assert [r["first_name"] for r in rows] == expected
    assert [r["company"] for r in rows] == expected
    assert [r["note"] for r in rows] == expected

    # The setting turns it off: the raw values come back.
    raw = make_settings(stack, export_neutralise_formulas=False)
    _, _, data = await run_export(client, raw, task_queue, tenant.workspace_id)
    assert [r["note"] for r in parse(data)[1]] == values


async def test_other_workspaces_contacts_never_appear(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    uid = await seed.create_user(owner_pool, f"o-{uuid.uuid4().hex[:6]}@example.com")
    other = await seed.create_workspace(owner_pool, uid, "Other")
    # Same tag name in both workspaces: the filter resolves names inside the workspace only.
    await seed_contacts(
        owner_pool,
        other,
        [
            contact(f"other{i}@example.com", tags=["vip"], custom_fields={"secret": "x"})
            for i in range(5)
        ],
    )
    await seed_contacts(
        owner_pool, tenant.workspace_id, [contact("mine@example.com", tags=["vip"])]
    )
    settings = make_settings(stack)
    for tags in ([], ["vip"]):
        _, record, data = await run_export(client, settings, task_queue, tenant.workspace_id, tags)
        head, rows = parse(data)
        assert [r["email"] for r in rows] == ["mine@example.com"]
        assert "secret" not in head and b"other" not in data
        assert record["row_count"] == 1
    # Row-level security is the second wall: inside workspace A's transaction the export's
    # queries see nothing of B's, even when they ask for B by id.
    app = await db.create_pool(settings.database_url or "", max_size=1)
    try:
        async with db.tenant_tx(app, tenant.workspace_id) as conn:
            chunks: list[bytes] = []

            async def keep(data: bytes, rows: int) -> None:
                chunks.append(data)

            copied = await exports.copy_rows(
                conn, other, None, ["secret"], neutralise_formulas=True, output=keep
            )
            assert (copied, chunks) == (0, [])
            assert await exports.count_contacts(conn, other, None) == 0
            assert await exports.custom_keys(conn, other, None) == []
        async with db.tenant_tx(app, other) as conn:
            assert await exports.count_contacts(conn, other, None) == 5
    finally:
        await app.close()


async def test_bad_requests_are_refused(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tenant: Tenant, task_queue: str
) -> None:
    settings = make_settings(stack)
    await add_tag(owner_pool, tenant.workspace_id, "vip")
    async with running_worker(client, settings, task_queue) as services:
        pool = services.pool
        with pytest.raises(exports.InvalidExportRequest, match="no tag named 'nope'"):
            await exports.create_export(pool, tenant.workspace_id, None, ["vip", "nope"])
        with pytest.raises(exports.InvalidExportRequest, match="does not exist"):
            await exports.create_export(pool, str(uuid.uuid4()), None, [])
        with pytest.raises(exports.InvalidExportRequest, match="is not a UUID"):
            await exports.create_export(pool, "not-a-uuid", None, [])
        with pytest.raises(exports.InvalidExportRequest, match="not found in the user directory"):
            await exports.create_export(pool, tenant.workspace_id, str(uuid.uuid4()), [])
        # A workflow started for an export that does not exist fails at once, no retries.
        missing = str(uuid.uuid4())
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                WF_PROCESS_EXPORT,
                ProcessExportInput(
                    export_id=missing, workspace_id=tenant.workspace_id, user_id=tenant.user_id
                ),
                id=export_workflow_id(missing),
                task_queue=task_queue,
            )
    assert "does not exist in workspace" in errors.root_message(info.value)
    for bad in ("../etc/passwd", "exports/../../x.csv", "/abs.csv", "exports//x.csv"):
        with pytest.raises(BlobKeyError):
            check_key(bad)
