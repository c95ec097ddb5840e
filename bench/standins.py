"""The benchmarks' Gravatar: tests/fakes.py's FakeGravatar in its own process.

Every bench runs with Gravatar on against it (a benchmark with lookups turned off would
measure a system nobody runs): `shared()` starts one per bench process, answering after
LATENCY seconds (Gravatar from a data centre answers in 100-300 ms; BENCH_GRAVATAR_LATENCY
overrides), about one address in HIT_EVERY with an avatar.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from folksjobs.devtools.devstack import free_port

ROOT = Path(__file__).resolve().parent.parent
HIT_EVERY = 10  # about one address in ten has an avatar
LATENCY = 0.2


class StandIn:
    """tests/fakes.py's FakeGravatar as its own process (python -m tests.fakes)."""

    def __init__(self, latency: float) -> None:
        self.port = free_port()
        self.latency = latency
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StandIn:
        args = [sys.executable, "-m", "tests.fakes", str(self.port), str(self.latency)]
        self.proc = subprocess.Popen([*args, str(HIT_EVERY)], cwd=ROOT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the Gravatar stand-in did not start") from None
                time.sleep(0.1)

    def reset(self) -> None:
        req = urllib.request.Request(f"{self.url}/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as r:
            out: dict[str, Any] = json.load(r)
        return out

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


_shared: StandIn | None = None


def shared() -> StandIn:
    """The process's stand-in, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        standin = StandIn(float(os.environ.get("BENCH_GRAVATAR_LATENCY", LATENCY)))
        _shared = standin.__enter__()
        atexit.register(standin.__exit__, None, None, None)
    return _shared
