"""The folders are the layers: every import inside dilnas points down (or stays in its own package), no command
imports another command, the API imports no command, and the pure layer (``dilnas.spec``, with the
``dilnas.utils`` modules it uses) loads without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "dilnas"
# Lowest first. A module may import from its own layer and from any lower one, never from a higher one; the
# wiring every command shares (cli, command_help, errors) sits just above spec; the API and the commands on top.
LAYERS = [
    ("utils",),
    ("spec",),
    ("<wiring>",),
    ("models", "data"),
    ("train",),
    ("analysis",),
    ("<api>", "<commands>"),
]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}
WIRING = {"cli", "command_help", "errors"}


def package_of(name: str) -> str:
    """``dilnas.train.trainer`` (or a name in it) -> ``train``; ``dilnas.cli`` -> ``<wiring>``; ``dilnas.api``
    -> ``<api>``; any other top-level module (a command) -> ``<commands>``."""
    parts = name.split(".")
    if len(parts) > 1 and parts[1] in LEVEL:
        return parts[1]
    if len(parts) > 1 and parts[1] in WIRING:
        return "<wiring>"
    return "<api>" if parts[1:2] == ["api"] else "<commands>"


def command_of(name: str) -> str | None:
    """The command module ``name`` lies in (``dilnas.search.run`` -> ``dilnas.search``), or None."""
    return ".".join(name.split(".")[:2]) if package_of(name) == "<commands>" else None


def violations_of(module: str, imports: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    """(line, target, why) of every import of ``module`` that breaks the layers."""
    own, found = package_of(module), []
    for line, target in imports:
        if target in ("dilnas", "dilnas.__version__"):
            continue
        other = package_of(target)
        if other != own and LEVEL[other] > LEVEL[own]:
            found.append((line, target, f"{own} imports from the higher layer {other}"))
        elif own == "<api>" and other == "<commands>":
            found.append((line, target, "the API imports a command module"))
        elif own == "<commands>" and other == "<commands>" and command_of(target) != command_of(module):
            found.append((line, target, "a command imports another command"))
        elif other != own and LEVEL[other] == LEVEL[own] and {own, other} == {"<api>", "<commands>"}:
            found.append((line, target, f"{own} imports {other}"))
    return found


def dilnas_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.append((".".join(parts[:-1] if parts[-1] == "__init__" else parts), path))
    return modules


def imported_modules(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a dilnas module, at any depth (function-level imports too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("dilnas")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")[: -node.level] if path.name != "__init__.py" else module.split(".")
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name.startswith("dilnas"):
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return found


def test_every_package_is_a_known_layer():
    packages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    assert packages == set(LEVEL) - {"<wiring>", "<api>", "<commands>"}
    assert {name for name in WIRING if (PACKAGE / f"{name}.py").is_file()} == WIRING


def test_import_layers_point_down():
    violations = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {target}: {why}"
        for module, path in dilnas_modules()
        for line, target, why in violations_of(module, imported_modules(path, module))
    ]
    assert not violations, "\n".join(violations)


def test_experiment_scripts_use_the_library_never_a_command():
    found = [
        f"{path.relative_to(REPO)}:{line}: {target}"
        for path in sorted((REPO / "experiments").rglob("*.py"))
        for line, target in imported_modules(path, "experiments.script")
        if package_of(target) == "<commands>" and target not in ("dilnas", "dilnas.__version__")
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        (
            "dilnas.spec.bad",
            "from dilnas.train.trainer import Trainer",
            "spec imports from the higher layer train",
        ),
        ("dilnas.cli", "from dilnas.analysis.sweep_summary import report_sweep", "higher layer analysis"),
        ("dilnas.cli", "from dilnas.train.signals import StopSignals", "higher layer train"),
        ("dilnas.models.bad", "from dilnas.cli import typed_config", None),  # wiring is below models: fine
        ("dilnas.data.bad", "import dilnas.train.trainer", "data imports from the higher layer train"),
        ("dilnas.api", "from dilnas import search as search_command", "the API imports a command module"),
        ("dilnas.api", "from dilnas.export import run", "the API imports a command module"),
        ("dilnas.retrain", "from dilnas.search import run", "a command imports another command"),
        ("dilnas.retrain", "from dilnas.api import search", "<commands> imports <api>"),
        ("dilnas.search", "from dilnas.train.search_run import run_search", None),
        ("dilnas.train.bad", "from dilnas.analysis.timing import time_callable", "higher layer analysis"),
        ("dilnas.analysis.bad", "from dilnas.train.run_dir import RunDir", None),
        ("dilnas.spec.bad", "from dilnas.utils.errors import UserError", None),
    ],
)
def test_import_layers_checker_catches_each_kind_of_violation(tmp_path, module, source, why):
    path = tmp_path / ("__init__.py" if module == "dilnas" else "module.py")
    path.write_text(source + "\n")
    found = violations_of(module, imported_modules(path, module))
    if why is None:
        assert found == []
    else:
        assert len(found) == 1 and why in found[0][2], found


@pytest.mark.parametrize("module", [m for m, _ in dilnas_modules() if m.startswith("dilnas.spec")])
def test_import_layers_pure_spec_loads_without_torch(module):
    code = f"import sys, {module}; bad = [m for m in ('torch', 'numpy', 'hydra') if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"


# The tests mirror the package: a folder per layer (commands: the commands end to end; experiments: the shipped
# experiment scripts), shared builders in tests.helpers, fixtures in conftest.py files (pytest injects them).
TESTS = REPO / "tests"
TEST_FOLDERS = {"spec", "models", "data", "train", "analysis", "commands", "experiments"}


def test_tests_mirror_the_layers_and_share_only_through_helpers():
    problems = []
    for path in sorted(TESTS.rglob("*.py")):
        relative = path.relative_to(TESTS)
        if path.name.startswith("test_") and (
            len(relative.parts) != 2 or relative.parts[0] not in TEST_FOLDERS
        ):
            problems.append(f"{relative}: a test module outside the layer folders {sorted(TEST_FOLDERS)}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests.") and (last.startswith("test_") or last == "conftest"):
                    problems.append(
                        f"{relative}:{node.lineno}: imports {name} (shared code goes in tests.helpers)"
                    )
    assert not problems, "\n".join(problems)
    assert {path.parent.name for path in TESTS.glob("*/__init__.py")} == TEST_FOLDERS | {"helpers"}
