"""The README's Temporal UI screenshots (docs/temporal-ui-*.png), taken in Debian's
headless Chromium from a running import, as a person would click:

    python -m starter dev                                     # one shell
    python -m starter import big.csv --workspace W --yes --no-wait   # another
    python -m tests.ui_screenshots import-<import id>          # while it runs

Playwright only drives the browser (never `playwright install`). The UI keeps its
column choice and saved views in the browser, so each run starts from the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Page, async_playwright

from folksjobs.settings import ROOT, get_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The README's saved view: the jobs without their per-workspace gates.
VIEW_QUERY = 'ExecutionStatus = "Running" AND WorkflowType != "WorkspaceImportGate"'


async def run_page(page: Page, ui: str, workflow_id: str, out: Path) -> str:
    await page.goto(f"{ui}/namespaces/default/workflows/{workflow_id}")
    await (
        page.get_by_role("link", name="User Metadata")
        .or_(page.get_by_text("User Metadata", exact=True))
        .first.click()
    )
    await page.get_by_text("Current Details").first.wait_for()
    # The panel fills in once the worker has answered the UI's query (a worker too busy to
    # answer in time leaves it empty: take the screenshot again).
    await page.wait_for_timeout(2500)
    await page.screenshot(path=out, clip={"x": 260, "y": 60, "width": 1340, "height": 640})
    return await page.inner_text("body")


async def list_page(page: Page, ui: str, out: Path) -> str:
    await page.goto(f"{ui}/namespaces/default/workflows?query={quote(VIEW_QUERY)}")
    await page.get_by_test_id("create-view-button").click()  # "Save as New"
    await page.get_by_test_id("workflow-save-view-modal-input").fill("jobs")
    await page.get_by_test_id("confirm-modal-button").filter(has_text="Save").first.click()
    await page.get_by_label("Configure Columns").click()
    for name in ("JobStatus", "WorkspaceId"):
        await page.get_by_label(f"Add {name} column").click()
    for name in ("Run ID", "End"):
        await page.get_by_label(f"Remove {name} column").click()
    await page.get_by_test_id("drawer-close-button").click()
    await page.wait_for_timeout(1500)
    await page.screenshot(path=out, clip={"x": 260, "y": 0, "width": 1340, "height": 420})
    return await page.inner_text("body")


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("workflow_id", help="a running import's workflow id")
    p.add_argument("--ui", default=get_settings().temporal_ui_url)
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args(argv)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1600, "height": 900})
        await run_page(page, args.ui, args.workflow_id, args.out / "temporal-ui-run.png")
        await list_page(page, args.ui, args.out / "temporal-ui-list.png")
        await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
