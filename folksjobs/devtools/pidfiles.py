"""Pid files of the dev stack: a server left running by a killed `starter dev` is found by
the next one, and a stack still running is never started twice on the same state.

The servers run in sessions of their own (so a terminal's Ctrl-C reaches only the
supervisor, which stops them in order); the price is that a SIGKILLed supervisor leaves
them running, and only their pid files lead to them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path


def write(path: Path, pid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n")
    tmp.replace(path)


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def running(path: Path, marker: str) -> int | None:
    """The pid in `path` when that process is alive and its command line contains
    `marker`; a stale file (the process gone, or its pid reused by another program) is
    removed and None returned."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if marker not in command_line(pid):
        remove(path)
        return None
    return pid


def terminate(pid: int, timeout: float = 15) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; True once the process is gone, False when
    it is not ours to signal."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
