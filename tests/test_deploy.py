"""deploy/: Docker does not run here, so check what the files name exists in the repo:
paths, starter commands, settings, search attributes."""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from folksjobs.infra.search_attributes import REGISTRATION
from folksjobs.settings import ROOT, Settings
from starter.cli import parser

DEPLOY = ROOT / "deploy"
SETTINGS = {name.upper() for name in Settings.model_fields}
# Starter commands that arrive with a job not merged on this branch yet: the check of a
# command naming them is skipped (with this reason) until then.
PENDING = {"schedule": "`starter schedule` comes with the weekly-digest job (issue 6)"}


def _starter_commands() -> set[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def check_command(argv: list[str], where: str) -> None:
    """A command a deploy file runs: `python worker.py` or `python -m starter ...`."""
    assert argv[0] == "python", f"{where}: {argv}"
    if argv[1:3] == ["-m", "starter"]:
        name = argv[3]
        if name not in _starter_commands():
            if name in PENDING:
                pytest.skip(f"{where}: {PENDING[name]}")
            raise AssertionError(f"{where}: no starter command {name!r} in {argv}")
        try:
            parser().parse_args(argv[3:])
        except SystemExit as e:
            raise AssertionError(f"{where}: starter refuses {argv}") from e
    else:
        script = argv[1]
        assert (ROOT / script).is_file(), f"{where}: {script} is not in the repo"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def app_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if "build" in s}


def test_compose_app_services_build_from_the_repo() -> None:
    apps = app_services()
    assert {"migrate", "schedule", "worker"} <= set(apps)
    for name, svc in apps.items():
        context = (DEPLOY / svc["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / svc["build"]["dockerfile"]).is_file(), name


@pytest.mark.parametrize("service", ["migrate", "schedule", "worker"])
def test_compose_commands_exist(service: str) -> None:
    check_command(app_services()[service]["command"], f"compose {service}")


def test_compose_environment_names_settings() -> None:
    for name, svc in app_services().items():
        unknown = set(svc["environment"]) - SETTINGS
        assert not unknown, f"compose {name}: not settings: {sorted(unknown)}"


def test_compose_stack_has_what_the_issue_lists() -> None:
    services = compose()["services"]
    images = " ".join(s.get("image", "") for s in services.values())
    for image in ("temporalio/auto-setup", "temporalio/ui", "postgres", "redis", "minio/minio"):
        assert image in images
    setup = " ".join(services["temporal-setup"]["command"])
    for attr, kind in REGISTRATION.items():
        assert attr in setup and f"--type {kind}" in setup
    deps = services["worker"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_copies_paths_that_exist_and_runs_the_worker() -> None:
    instructions = dockerfile()
    copied = [shlex.split(arg)[:-1] for op, arg in instructions if op == "COPY"]
    assert copied
    for sources in copied:
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, not in the repo"
    # Every package pyproject.toml installs is copied in.
    names = {Path(src).parts[0] for sources in copied for src in sources}
    assert {"folksjobs", "workflows", "activities", "starter", "worker.py"} <= names
    [cmd] = [json.loads(arg) for op, arg in instructions if op == "CMD"]
    check_command(cmd, "Dockerfile CMD")
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    for name in re.findall(r"([A-Z_]+)=", env):
        assert name in SETTINGS or name.startswith(("PYTHON", "PIP_")), name


def readme() -> str:
    return (DEPLOY / "README.md").read_text()


def test_readme_commands_exist() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", readme(), re.S)
    commands = [ln.strip() for b in blocks for ln in b.splitlines()]
    starter = [c for c in commands if c.startswith("python -m starter")]
    assert starter
    for c in starter:
        check_command(shlex.split(c.split("#")[0]), "README")
    for c in commands:
        for path in re.findall(r"-f (\S+)", c):
            assert (ROOT / path).is_file(), f"README names {path}"


def test_readme_paths_and_settings_exist() -> None:
    text = readme()
    for path in re.findall(r"`((?:deploy|docs|folksjobs)/[^`*]*)`", text):
        assert (ROOT / path).exists(), f"README names {path}"
    mentioned = set(re.findall(r"`([A-Z][A-Z0-9_]{3,})(?:=[^`]*)?`", text))
    assert mentioned
    unknown = mentioned - SETTINGS
    assert not unknown, f"README names settings that do not exist: {sorted(unknown)}"
    for line in re.findall(r"python -m starter (\w+)", text):
        if line not in PENDING:
            assert line in _starter_commands(), line
