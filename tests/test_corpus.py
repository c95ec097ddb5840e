"""Every corpus file through the real upload and import: the outcome its manifest expects.

One worker for the module; each file gets a workspace of its own, so its contacts are
exactly what that file stored. `run_file` is the only place that knows the import's API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowFailureError

from folksjobs.confirm import confirm_import
from folksjobs.devtools import seed
from folksjobs.imports.mapping import MappingError
from folksjobs.imports.uploads import UploadRefused, upload_csv
from folksjobs.services import Services
from folksjobs.settings import Settings
from tests.conftest import Stack, make_settings, running_worker
from tests.corpus.check import Outcome, judge
from tests.corpus.generate import CASES, generate, manifest

pytestmark = pytest.mark.corpus

# Files whose outcome differs from the manifest because of a known defect, with why.
# strict: once the defect is fixed the test says so, and the entry must go.
KNOWN: dict[str, str] = {}


@dataclass
class Corpus:
    directory: Path
    entries: dict[str, dict[str, Any]]
    client: Client
    settings: Settings
    services: Services
    owner: asyncpg.Pool


@pytest.fixture(scope="module")
async def corpus(
    client: Client, stack: Stack, owner_pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Corpus]:
    directory = tmp_path_factory.mktemp("corpus")
    entries = generate(directory)
    queue = f"corpus-{uuid.uuid4().hex[:8]}"
    # Small chunks so the larger files cross chunk boundaries (cross-chunk dedup).
    settings = make_settings(
        stack, temporal_task_queue=queue, import_chunk_rows=500, import_sub_batch_rows=100
    )
    async with running_worker(client, settings, queue) as services:
        yield Corpus(directory, entries, client, settings, services, owner_pool)


async def stored_contacts(owner: asyncpg.Pool, workspace_id: str) -> list[dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT email, first_name, last_name, company, phone, custom_fields"
        " FROM contacts WHERE workspace_id = $1::uuid ORDER BY email",
        workspace_id,
    )
    return [dict(r) for r in rows]


async def run_file(c: Corpus, path: Path, entry: dict[str, Any]) -> Outcome:
    """Upload, confirm and wait, as a user would; what they would see comes back."""
    settings = c.settings.model_copy(update=entry.get("settings", {}))
    uid = await seed.create_user(c.owner, f"corpus-{uuid.uuid4().hex[:8]}@example.com")
    wid = await seed.create_workspace(c.owner, uid, f"corpus {path.name}")
    try:
        with path.open("rb") as source:
            up = await upload_csv(
                c.services.pool, c.services.blob, settings, source, path.name, wid, uid
            )
        handle = await confirm_import(c.client, c.services.pool, settings, wid, up.import_id)
    except (UploadRefused, MappingError) as e:
        return Outcome("refused", "upload", str(e), contacts=await stored_contacts(c.owner, wid))
    try:
        result: dict[str, Any] = await handle.result()  # type: ignore[assignment]
    except WorkflowFailureError:
        rec = await c.owner.fetchrow(
            "SELECT error_log FROM imports WHERE id = $1::uuid", up.import_id
        )
        message = str((rec["error_log"] or {}).get("message", "")) if rec else ""
        return Outcome("refused", "import", message, contacts=await stored_contacts(c.owner, wid))
    warnings = await c.owner.fetchval(
        "SELECT warnings FROM imports WHERE id = $1::uuid", up.import_id
    )
    return Outcome(
        "imported",
        "import",
        rows=result["total_rows"],
        inserted=result["inserted"],
        updated=result["updated"],
        unchanged=result["unchanged"],
        failed=result["failed"],
        duplicates=result["duplicates"],
        error_samples=[(s["row"], s["reason"]) for s in result["error_samples"]],
        warnings=[*up.warnings, *(w for w in warnings or [] if w not in up.warnings)],
        contacts=await stored_contacts(c.owner, wid),
    )


def params() -> list[Any]:
    out = []
    for case in CASES:
        marks = (
            [pytest.mark.xfail(reason=KNOWN[case.name], strict=True)] if case.name in KNOWN else []
        )
        out.append(pytest.param(case.name, id=case.name, marks=marks))
    return out


@pytest.mark.parametrize("name", params())
async def test_corpus_file(corpus: Corpus, name: str) -> None:
    entry = corpus.entries[name]
    got = await run_file(corpus, corpus.directory / name, entry)
    print(f"{name}: {got.summary()}")  # the table for the closing note (pytest -rA)
    ok, why = judge(entry, got)
    assert ok, f"{name} ({entry.get('note') or entry['group']}):\n{why}"


def test_manifest_is_the_generated_one() -> None:
    assert manifest() == manifest()
