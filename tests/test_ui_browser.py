"""The Temporal UI, in a real headless Chromium (Debian's), decodes an encrypted import
through the codec server that `starter dev` points it at (--ui-codec-endpoint).

Skipped when Chromium or Playwright is missing (`apt-get install -y chromium`; the
Playwright package only drives it: never `playwright install`).
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import SecretStr
from temporalio.client import Client

from folksjobs.devtools.devstack import TemporalDevServer, free_port
from folksjobs.infra.codec import new_key_entry
from folksjobs.infra.codec_server import app_from_settings
from folksjobs.infra.temporal import connect
from starter.stack import ui_codec_args
from tests.conftest import Stack, Tenant, make_settings, running_worker
from tests.importing import csv_bytes, import_bytes

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.async_api")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Debian chromium")


async def test_encrypted_import_is_readable_in_the_ui(
    stack: Stack, tenant: Tenant, tmp_path: Path
) -> None:
    ui_port, codec_port = free_port(), free_port()
    keys = SecretStr(new_key_entry("ui-test"))
    settings = make_settings(
        stack, payload_encryption_keys=keys, temporal_ui_url=f"http://localhost:{ui_port}",
        codec_server_bind=f"127.0.0.1:{codec_port}", temporal_task_queue="ui-browser",
        # The chunked path: the summaries checked below are those of regular activities
        # (a 7-row file would otherwise be one local import-small step).
        import_inline_max_rows=0,
    )  # fmt: skip
    server = TemporalDevServer(tmp_path / "temporal", ui_port=ui_port,
                               extra_args=ui_codec_args(settings))  # fmt: skip
    server.start()
    runner = web.AppRunner(app_from_settings(settings))  # no token: loopback only
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", codec_port).start()
    try:
        settings = settings.model_copy(update={"temporal_address": server.address})
        client: Client = await connect(settings)
        rows = [["email"], *[[f"ui{i}-{uuid.uuid4().hex[:6]}@example.com"] for i in range(7)]]
        async with running_worker(client, settings, "ui-browser") as services:
            up, result = await import_bytes(client, services, settings, tenant.workspace_id,
                                            tenant.user_id, csv_bytes(rows))  # fmt: skip
        assert result["inserted"] == 7
        # What Temporal stores is ciphertext...
        history = await client.get_workflow_handle(f"import-{up.import_id}").fetch_history()
        raw = history.events[-1].workflow_execution_completed_event_attributes.result
        assert raw.payloads[0].metadata["encoding"] == b"binary/encrypted"

        async with playwright.async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = await browser.new_page()
            await page.goto(f"{settings.temporal_ui_url}/namespaces/default/workflows/"
                            f"import-{up.import_id}")  # fmt: skip
            # ...and the UI shows the result decoded, counts included.
            await page.get_by_text('"inserted": 7').first.wait_for(timeout=60_000)
            text = await page.inner_text("body")
            await browser.close()
        assert "binary/encrypted" not in text
        # Activity summaries (ids only) are payloads too: decoded, readable.
        assert "process-batch • chunk 1 of 1" in text
        # With encryption on, the summary names the file (it is encrypted like a payload).
        desc = await client.get_workflow_handle(f"import-{up.import_id}").describe()
        assert await desc.static_summary() == (
            f"CSV import contacts.csv (7 rows) into workspace {tenant.workspace_id}"
        )
    finally:
        await runner.cleanup()
        server.stop()
