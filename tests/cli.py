"""Running `python -m starter` as a person does: a fresh process, stdin not a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from folksjobs.settings import ROOT, Settings

# The environment a test's own settings stand for; anything else from the caller's
# environment that would change the answer is removed.
_UNSET = ("PAYLOAD_ENCRYPTION_KEYS", "ANTHROPIC_API_KEY", "TEMPORAL_API_KEY")


def settings_env(settings: Settings, **extra: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    env.update(
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        BLOB_URL=settings.blob_url,
        OUTBOX_DIR=str(settings.outbox_dir),
        STATE_DIR=str(settings.state_dir),
        GRAVATAR_ENABLED="false",
    )
    if settings.payload_encryption_keys is not None:
        env["PAYLOAD_ENCRYPTION_KEYS"] = settings.payload_encryption_keys.get_secret_value()
    env.update({k: str(v) for k, v in extra.items()})
    return env


def starter(
    settings: Settings, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", *args], cwd=ROOT,
        env=env if env is not None else settings_env(settings),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
