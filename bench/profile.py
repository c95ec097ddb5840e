"""Where a worker's time goes: py-spy attached to it, summarised by function.

    python bench/profile.py var/bench/profiles/a-1000000-import.txt

py-spy writes collapsed stacks ("frame;frame;... count"); idle threads are left out,
so the shares are of the time the worker's Python threads were busy. Inclusive: samples
where the function is anywhere on the stack; self: samples where it is the leaf.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def attach(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """Starts sampling `pid` (and its children) until it exits; None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "50",
         "--subprocesses", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=open(out.with_suffix(".log"), "wb"),
    )  # fmt: skip


def _name(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    short = "/".join(Path(file).parts[-2:]) if "site-packages" in file or "/lib/" in file else file
    for root in ("/work/", "/tmp/"):
        if root in short:
            short = short.split("/", 3)[-1]
    return f"{m.group('func')} ({short})"


def summarise(raw: Path, top: int = 25) -> str:
    incl: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_name(f) for f in stack.split(";") if f]
        # The first frames name the process and thread; functions start after them.
        funcs = [f for f in frames if "(" in f]
        if not funcs:
            continue
        total += n
        for f in set(funcs):
            incl[f] += n
        self_[funcs[-1]] += n
    if not total:
        return f"no samples in {raw}"
    lines = [f"{total:,} busy samples (50 Hz) in {raw.name}", "", "| inclusive | self | function |",
             "|---:|---:|---|"]  # fmt: skip
    names = [f for f, _ in incl.most_common(top)]
    names += [f for f, _ in self_.most_common(top) if f not in names]
    for f in names[: top * 2]:
        lines.append(f"| {100 * incl[f] / total:.1f} % | {100 * self_[f] / total:.1f} % | `{f}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(summarise(Path(arg)))
