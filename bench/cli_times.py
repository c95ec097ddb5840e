"""Wall time of `python -m starter ... --help` for every command (issue 18: < 0.5 s).

    .venv/bin/python bench/cli_times.py [--runs 5] [--root DIR]

Each command runs `--runs` times in a fresh interpreter; the median is printed, in
seconds, as one JSON object. `--root` times another checkout (e.g. an older commit
unpacked with `git archive`) with the same interpreter.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [
    [], ["dev"], ["demo"], ["migrate"], ["seed"], ["welcome"], ["import"], ["export"],
    ["schedule"], ["digest"], ["dispatch"], ["contract"], ["codec-server"],
]  # fmt: skip


def median_seconds(root: Path, argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "starter", *argv, "--help"], cwd=root,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    args = p.parse_args()
    out = {" ".join(c) or "(top)": round(median_seconds(args.root, c, args.runs), 3)
           for c in COMMANDS}  # fmt: skip
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
