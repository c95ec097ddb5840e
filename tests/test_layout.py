"""The package layout is the architecture (README "Architecture"): each subpackage of
folksjobs/ sits in a layer and imports only from its own layer or the ones below, nothing
imports in a circle, and the worker never loads the dev tools.

    settings, models, errors  <  infra  <  tenancy  <  notify  <  imports, exports, digest
        <  catalog, events, services, confirm  <  api  <  devtools

Checked on the source (ast), so a lazy import inside a function counts as well.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "folksjobs"
LAYERS: list[set[str]] = [
    {"folksjobs", "folksjobs.settings", "folksjobs.models", "folksjobs.errors",
     "folksjobs.migrations"},
    {"folksjobs.infra"},
    {"folksjobs.tenancy"},
    {"folksjobs.notify"},
    {"folksjobs.imports", "folksjobs.exports", "folksjobs.digest"},
    {"folksjobs.catalog", "folksjobs.events", "folksjobs.services", "folksjobs.confirm"},
    {"folksjobs.api"},
    {"folksjobs.devtools"},
]  # fmt: skip
# The application around the package: folksjobs never reaches up into it.
APPLICATION = ("activities", "workflows", "starter", "worker", "tests", "bench")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> int:
    """The layer of a module: that of its longest listed prefix."""
    best = -1, 0
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best[1]:
                best = i, len(name)
    assert best[0] >= 0, f"{module} is in no layer: add its subpackage to LAYERS"
    return best[0]


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports (a `from pkg import name` of a submodule counts as
    the submodule)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return frozenset(found)


def test_no_module_imports_upward() -> None:
    upward = [
        f"{m} (layer {layer(m)}) imports {dep} (layer {layer(dep)})"
        for m in MODULES
        for dep in imports_of(m)
        if dep.split(".")[0] == "folksjobs" and layer(dep) > layer(m)
    ]
    assert upward == []


def test_the_package_never_imports_the_application() -> None:
    reached = [
        f"{m} imports {dep}"
        for m in MODULES
        for dep in imports_of(m)
        if dep.split(".")[0] in APPLICATION
    ]
    assert reached == []


def test_no_import_cycles() -> None:
    graph = {m: {d for d in imports_of(m) if d in MODULES and d != m} for m in MODULES}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for m, deps in graph.items():
        graph[m] = {
            d for d in deps if not (MODULES[d].name == "__init__.py" and m.startswith(d + "."))
        }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append([*path[path.index(d) :], d] if d in path else [m, d])
            elif d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_worker_never_loads_the_dev_tools() -> None:
    probe = (
        "import sys, worker; "
        "print(sorted(m for m in sys.modules if m.startswith('folksjobs.devtools')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    # The probe sees what it should: the worker did load the package's other rooms.
    assert "folksjobs" in (ROOT / "worker.py").read_text()


def test_every_subpackage_has_a_layer_and_a_line_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for sub in sorted(p for p in PACKAGE.iterdir() if (p / "__init__.py").exists()):
        layer(f"folksjobs.{sub.name}")
        if sub.name != "migrations":
            assert f"{sub.name}/" in readme, f"README's tree lacks folksjobs/{sub.name}/"


SOURCES = [
    p
    for top in ("folksjobs", *APPLICATION)
    if top != "tests"
    for p in sorted((ROOT / top).rglob("*.py") if (ROOT / top).is_dir() else [ROOT / f"{top}.py"])
    if p.exists()
]


def import_repo_calls(attr: str) -> list[str]:
    """Where `folksjobs.imports.repo.<attr>` is called, under whatever name it is imported."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(), str(path))
        aliases, bare = set(), False
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module in ("folksjobs.imports", None):
                aliases |= {a.asname or a.name for a in n.names if a.name == "repo"}
            if isinstance(n, ast.ImportFrom) and n.module == "folksjobs.imports.repo":
                bare = bare or any(a.name == attr for a in n.names)
        for n in ast.walk(tree):
            if isinstance(n, ast.Call) and (
                (
                    isinstance(n.func, ast.Attribute)
                    and n.func.attr == attr
                    and isinstance(n.func.value, ast.Name)
                    and n.func.value.id in aliases
                )
                or (bare and isinstance(n.func, ast.Name) and n.func.id == attr)
            ):
                found.append(str(path.relative_to(ROOT)))
    return found


def test_one_owner_moves_an_import_record() -> None:
    """issue 24: the pending -> processing move has one call site (lifecycle.claim), and
    every other state change of an import record is made through lifecycle too."""
    assert import_repo_calls("claim") == ["folksjobs/imports/lifecycle.py"]
    for change in ("set_mapping", "complete", "end", "discard_pending", "record_batch"):
        assert import_repo_calls(change) == ["folksjobs/imports/lifecycle.py"], change


def test_no_file_of_the_busy_rooms_exceeds_400_lines() -> None:
    """The house style's limit for api/, activities/ and workflows/ (issue 24)."""
    rooms = [ROOT / "activities", ROOT / "workflows", PACKAGE / "api"]
    long = {
        str(p.relative_to(ROOT)): n
        for room in rooms
        for p in room.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}
