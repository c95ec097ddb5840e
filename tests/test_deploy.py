"""deploy/: Docker and Kubernetes do not run here, so check what the files name exists in
the repo (paths, commands, settings, search attributes) and validate the Kubernetes
manifests against the API's schemas, offline (kubernetes-validate bundles them)."""

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
PENDING: dict[str, str] = {}
K8S = DEPLOY / "k8s"
K8S_VERSION = "1.33.0"


def _starter_commands() -> set[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def check_command(argv: list[str], where: str) -> None:
    """A command a deploy file runs: `folksjobs ...`, `python -m starter ...` or
    `python worker.py`. Returns quietly for a command still pending (see PENDING)."""
    if argv[0] == "folksjobs":
        args = argv[1:]
    elif argv[:3] == ["python", "-m", "starter"]:
        args = argv[3:]
    else:
        assert argv[0] == "python", f"{where}: {argv}"
        assert (ROOT / argv[1]).is_file(), f"{where}: {argv[1]} is not in the repo"
        return
    if args[0] not in _starter_commands():
        assert args[0] in PENDING, f"{where}: no command {args[0]!r} in {argv}"
        return
    try:
        parser().parse_args(args)
    except SystemExit as e:
        raise AssertionError(f"{where}: folksjobs refuses {argv}") from e


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def app_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if "build" in s}


def test_compose_app_services_build_from_the_repo() -> None:
    apps = app_services()
    assert {"migrate", "schedule", "schedule-uploads", "worker", "api"} <= set(apps)
    for name, svc in apps.items():
        context = (DEPLOY / svc["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / svc["build"]["dockerfile"]).is_file(), name


@pytest.mark.parametrize("service", ["migrate", "schedule", "schedule-uploads", "worker", "api"])
def test_compose_commands_exist(service: str) -> None:
    check_command(app_services()[service]["command"], f"compose {service}")


def test_compose_environment_names_settings() -> None:
    for name, svc in app_services().items():
        unknown = set(svc["environment"]) - SETTINGS
        assert not unknown, f"compose {name}: not settings: {sorted(unknown)}"


def test_compose_stack_has_what_the_issue_lists() -> None:
    services = compose()["services"]
    images = " ".join(s.get("image", "") for s in services.values())
    for image in ("temporalio/server:", "temporalio/admin-tools:", "temporalio/ui", "postgres"):
        assert image in images
    assert "redis" in images and "minio/minio" in images
    # The deprecated image is gone; the server and its tools are one release.
    assert "auto-setup" not in images
    server = services["temporal"]["image"].split(":")[1]
    assert {services[s]["image"] for s in ("temporal-schema", "temporal-setup")} == {
        f"temporalio/admin-tools:{server}"
    }
    assert services["temporal"]["depends_on"]["temporal-schema"]["condition"] == (
        "service_completed_successfully"
    )
    setup = " ".join(services["temporal-setup"]["command"])
    for attr, kind in REGISTRATION.items():
        assert attr in setup and f"--type {kind}" in setup
    deps = services["worker"]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_installs_from_the_lock_and_runs_the_worker() -> None:
    instructions = dockerfile()
    copied = [
        shlex.split(arg)[:-1] for op, arg in instructions if op == "COPY" and "--from" not in arg
    ]
    assert copied
    for sources in copied:
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, not in the repo"
    # Every package pyproject.toml installs is copied in.
    names = {Path(src).parts[0] for sources in copied for src in sources}
    assert {"folksjobs", "workflows", "activities", "starter", "worker.py"} <= names
    # Dependencies only from the hashed lock; the project itself adds none.
    installs = [arg for op, arg in instructions if op == "RUN" and "pip install" in arg]
    assert any("-r requirements/deploy.txt" in arg for arg in installs)
    for arg in installs:
        assert "-r requirements/deploy.txt" in arg or "--no-deps" in arg, arg
    [cmd] = [json.loads(arg) for op, arg in instructions if op == "CMD"]
    assert cmd == ["folksjobs", "worker"]
    check_command(cmd, "Dockerfile CMD")
    env = " ".join(arg for op, arg in instructions if op == "ENV")
    for name in re.findall(r"([A-Z_]+)=", env):
        assert name in SETTINGS or name.startswith(("PYTHON", "PIP_", "PATH")), name


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


# --- Kubernetes -----------------------------------------------------------------------


def manifests() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == on_disk, "every manifest is in the kustomization"
    return [
        (f, doc)
        for f in kustomization["resources"]
        for doc in yaml.safe_load_all((K8S / f).read_text())
    ]


def kind(k: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == k}


def pod_containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_manifests_are_valid_kubernetes_objects() -> None:
    import kubernetes_validate

    for file, doc in manifests():
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(f"{file} {doc['kind']}: {e.message} at {list(e.path)}") from e


def test_manifests_run_folksjobs_commands_with_settings() -> None:
    config = kind("ConfigMap")["folksjobs-config"]["data"]
    assert not set(config) - SETTINGS, "ConfigMap keys must be settings"
    for k in ("Deployment", "Job"):
        for name, doc in kind(k).items():
            for c in pod_containers(doc):
                assert c["image"] == "folksjobs", name
                check_command(c["command"], f"k8s {name}/{c['name']}")
                refs = {next(iter(r.values()))["name"] for r in c["envFrom"]}
                assert refs == {"folksjobs-config", "folksjobs-secrets"}
                assert not {e["name"] for e in c.get("env", [])} - SETTINGS, name


def test_deployments_have_probes_and_the_worker_drains_within_its_grace_period() -> None:
    deployments = kind("Deployment")
    assert set(deployments) == {"folksjobs-worker", "folksjobs-api"}
    for name, doc in deployments.items():
        for c in doc["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in c and "livenessProbe" in c, name
            ports = {p["name"] for p in c["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] in ports, (name, probe)
    [api] = deployments["folksjobs-api"]["spec"]["template"]["spec"]["containers"]
    port = next(p["containerPort"] for p in api["ports"] if p["name"] == "http")
    assert {e["name"]: e["value"] for e in api["env"]}["API_BIND"].endswith(f":{port}")
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    worker = deployments["folksjobs-worker"]["spec"]["template"]["spec"]
    drain = int(kind("ConfigMap")["folksjobs-config"]["data"]["WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    # SIGTERM starts the drain; Kubernetes SIGKILLs at the end of the grace period.
    assert worker["terminationGracePeriodSeconds"] >= drain + 10
    [c] = worker["containers"]
    assert c["command"] == ["folksjobs", "worker"]
    metrics = next(p["containerPort"] for p in c["ports"] if p["name"] == "metrics")
    assert kind("ConfigMap")["folksjobs-config"]["data"]["METRICS_BIND"].endswith(f":{metrics}")


def test_setup_job_migrates_then_applies_the_schedules() -> None:
    job = kind("Job")["folksjobs-setup"]["spec"]["template"]["spec"]
    steps = [c["command"] for c in [*job["initContainers"], *job["containers"]]]
    assert steps == [
        ["folksjobs", "migrate"],
        ["folksjobs", "schedule", "apply"],
        ["folksjobs", "schedule", "--schedule-id", "expire-files", "apply"],
        ["folksjobs", "schedule", "--schedule-id", "discard-stale-uploads", "apply"],
    ]
