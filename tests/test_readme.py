"""The README's "keep the stack running" block, run as it is, in order, against `starter dev`.

The test starts the dev stack the way the block's first line does (on free ports, with
the session's PostgreSQL and Valkey), takes the `export` line from the banner as the
block says ("with the URLs it prints"), and runs every other line in one bash session.
Each command must exit 0 and print what the README implies.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from folksjobs.devtools.devstack import free_port
from folksjobs.settings import ROOT, Settings
from tests.cli import settings_env

# What each command after the export line must print (in the block's order).
EXPECTED = [
    None,  # W=... U=...
    "tags vip (2 contacts), newsletter (2 contacts)",
    '"rows": 10000',
    "completed in",
    None,  # I=$(... --json ...): the id goes to the variable
    "2 contacts exported",
    "started welcome-00000000-0000-4000-8000-000000000001",
    "already dispatched (existing run)",
    "schedule     weekly-digest",
    "completed\n  workflow   import-",
]


def readme_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    after = text.split("To keep the stack running and use it yourself", 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


async def _read_until(stream: asyncio.StreamReader, prefix: str, seen: list[str]) -> str:
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("starter dev ended before its banner:\n" + "".join(seen))
        seen.append(line)
        if line.strip().startswith(prefix):
            return line.strip()


async def test_readme_walkthrough_runs_verbatim(settings: Settings, tmp_path: Path) -> None:
    lines = readme_block()
    assert lines[0].startswith("python3 run.py starter dev"), lines[0]
    assert lines[1].startswith("export DATABASE_URL="), lines[1]
    commands = lines[2:]
    assert len(commands) == len(EXPECTED), commands
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("the block runs .venv/bin/python: create it with `python3 run.py test`")

    env = settings_env(
        settings,
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_UI_URL=f"http://127.0.0.1:{free_port()}",
        TEMPORAL_TASK_QUEUE=f"readme-{os.getpid()}",
        STATE_DIR=tmp_path / "var",
        BLOB_URL=tmp_path / "blobs",
        OUTBOX_DIR=tmp_path / "outbox",
        API_BIND=f"127.0.0.1:{free_port()}",
    )
    dev = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "starter", "dev", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert dev.stdout is not None
    seen: list[str] = []
    try:
        export = await asyncio.wait_for(_read_until(dev.stdout, "export ", seen), 180)
        assert any(x.split() == ["Encryption", "off", "(PAYLOAD_ENCRYPTION_KEYS", "unset)"]
                   for x in seen), seen  # fmt: skip
        # The same names the README exports; the values are this stack's.
        assert export.split("=")[0] == lines[1].split("=")[0]
        script = ["set -euo pipefail", export]
        for n, cmd in enumerate(commands):
            script += [f"echo '@@@ {n}'", cmd]
        run = await asyncio.to_thread(
            subprocess.run, ["bash", "-c", "\n".join(script)], cwd=ROOT, env=env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    finally:
        dev.send_signal(signal.SIGINT)
        await asyncio.wait_for(dev.communicate(), 120)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    outputs = re.split(r"^@@@ \d+\n", run.stdout, flags=re.M)[1:]
    assert len(outputs) == len(commands)
    for cmd, want, out in zip(commands, EXPECTED, outputs, strict=True):
        if want is not None:
            assert want in out, f"{cmd}\n---\n{out}"
    # The walk-through makes sense: the import fails just the rows the generator made
    # invalid (about 1 %), and folds just its duplicates; nothing else is refused.
    generated = json.loads(outputs[2])
    counts = dict(re.findall(r"^  (rows|failed|duplicates) +([\d,]+)$", outputs[3], re.M))
    failed, duplicates = (int(counts[k].replace(",", "")) for k in ("failed", "duplicates"))
    assert failed == generated["invalid_rows"], outputs[3]
    assert 0.005 < failed / generated["rows"] < 0.015, outputs[3]
    assert duplicates == generated["duplicate_rows"], outputs[3]
    assert dev.returncode == 0, "".join(seen)


def test_readme_images_exist() -> None:
    """The Temporal UI screenshots (tests/ui_screenshots.py) the README shows are in docs/."""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert "docs/temporal-ui-run.png" in images and "docs/temporal-ui-list.png" in images
    for image in images:
        assert (ROOT / image).is_file(), image
