"""The console page in a real headless Chromium (Debian's package), used as a person would:
read how to make a key, give it, reload (the key is kept for the session), drop a 12-column
CSV (its preview scrolls inside its card), change one column's field, confirm, watch the
bar reach 100 %, read the summary, export with a tag filter and download the file."""

from __future__ import annotations

import csv
import io
import os
import uuid
from pathlib import Path

import pytest
from playwright.async_api import async_playwright, expect

from tests.apiserver import ApiServer
from tests.importing import csv_bytes

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# .ci/run installs Debian's chromium and sets this, so CI can never skip the test.
REQUIRED = bool(os.environ.get("FOLKSJOBS_REQUIRE_BROWSER"))

# Twelve columns, long names and values: wider than the page, as real exports are.
EXTRA = [f"Extra column number {n} with a long name" for n in range(4, 13)]
ROWS = [["Email", "Name", "Org", *EXTRA]] + [
    [f"web{i}@example.com" if i % 100 else f"broken-{i}", f"W{i}", f"Org{i % 4}"]
    + [f"value {n} of row {i}, long enough to need room" for n in range(4, 13)]
    for i in range(300)
]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not REQUIRED,
    reason="Debian's chromium is not installed (apt-get install chromium); .ci/run installs it",
)


async def test_console_import_and_export(api_server: ApiServer, tmp_path: Path) -> None:
    api = api_server
    t = await api.tenant("Console")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(accept_downloads=True)
            await page.goto(api.url + "/")
            await expect(page.locator("#key-hint")).to_contain_text(
                "python -m starter api-key create --workspace <id> --name"
            )
            await page.fill("#key", "fj_wrong")
            await page.click("#use-key")
            await expect(page.locator("#error")).to_contain_text("401")
            await page.fill("#key", t.key)
            await page.click("#use-key")
            await expect(page.locator("#key-state")).to_have_text("ok")
            # A reload keeps the key for the session (sessionStorage, not localStorage).
            await page.reload()
            await expect(page.locator("#key-state")).to_have_text("ok")
            await expect(page.locator("#upload-section")).to_be_visible()
            assert await page.evaluate("localStorage.length") == 0

            # Drag the file in: a drop event carrying it, as the browser fires one.
            transfer = await page.evaluate_handle(
                """(text) => {
                    const dt = new DataTransfer();
                    dt.items.add(new File([text], "people.csv", { type: "text/csv" }));
                    return dt;
                }""",
                csv_bytes(ROWS).decode(),
            )
            await page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})
            await expect(page.locator("#preview tbody tr")).to_have_count(5)
            await expect(page.locator("#preview-info")).to_contain_text("300 rows")
            await expect(page.locator("#preview thead th")).to_have_count(24)  # names, fields
            # The preview scrolls inside its card: the table is wider than its box, the box
            # stays inside the card, and the page itself has nothing to scroll sideways.
            fits = await page.evaluate(
                """() => {
                    const box = document.getElementById("preview-scroll");
                    const card = document.getElementById("preview-section").getBoundingClientRect();
                    const r = box.getBoundingClientRect();
                    return {
                        scrolls: box.scrollWidth > box.clientWidth,
                        inside: r.left >= card.left && r.right <= card.right,
                        page: document.documentElement.scrollWidth
                            <= document.documentElement.clientWidth,
                    };
                }"""
            )
            assert fits == {"scrolls": True, "inside": True, "page": True}
            org = page.locator('select[data-header="Org"]')
            await expect(org).to_have_value("custom:Org")
            await org.select_option("company")
            await page.click("#confirm")

            await expect(page.locator("#percent")).to_have_text("100 %", timeout=60_000)
            await expect(page.locator("#sum-status")).to_have_text("completed")
            db = await api.owner.fetchrow(
                "SELECT inserted_rows, failed_rows, workflow_id FROM imports"
                " WHERE workspace_id = $1::uuid",
                t.workspace_id,
            )
            assert db is not None and (db["inserted_rows"], db["failed_rows"]) == (297, 3)
            await expect(page.locator("#sum-inserted")).to_have_text("297")
            await expect(page.locator("#sum-unchanged")).to_have_text("0")
            await expect(page.locator("#sum-failed")).to_have_text("3")
            await expect(page.locator("#samples li")).to_have_count(3)
            await expect(page.locator("#samples li").first).to_contain_text("row 2")
            link = await page.locator("#ui-link").get_attribute("href")
            assert link and link.endswith(f"/workflows/{db['workflow_id']}")
            companies = await api.owner.fetchval(
                "SELECT count(DISTINCT company) FROM contacts WHERE workspace_id = $1::uuid",
                t.workspace_id,
            )
            assert companies == 4

            tag = await api.owner.fetchval(
                "INSERT INTO tags (id, workspace_id, name) VALUES ($1, $2::uuid, 'vip')"
                " RETURNING id",
                uuid.uuid4(),
                t.workspace_id,
            )
            await api.owner.execute(
                "INSERT INTO contact_tags (workspace_id, contact_id, tag_id) SELECT workspace_id,"
                " id, $2 FROM contacts WHERE workspace_id = $1::uuid AND company = 'Org1'",
                t.workspace_id,
                tag,
            )
            await page.fill("#tags", "vip")
            await page.click("#export")
            await expect(page.locator("#download")).to_be_visible(timeout=60_000)
            async with page.expect_download() as info:
                await page.click("#download")
            download = await info.value
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
        finally:
            await browser.close()
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert len(rows) == 75 and {r["company"] for r in rows} == {"Org1"}
    assert {r["tags"] for r in rows} == {"vip"}
