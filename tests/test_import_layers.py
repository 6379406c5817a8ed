"""The folders are the layers: every import inside dilnas points down (or stays in its own package), and
the pure layer (``dilnas.spec``, with the ``dilnas.utils`` modules it uses) loads without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dilnas"
# Lowest first. A module may import from its own package and from any lower layer, never from a higher one.
LAYERS = [("utils",), ("spec",), ("models", "data"), ("train",), ("analysis",), ("<commands>",)]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}


def package_of(name: str) -> str:
    """``dilnas.train.trainer`` (or a name in it) -> ``train``; a top-level module (a command, cli, api) ->
    ``<commands>``."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LEVEL else "<commands>"


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
    assert packages == set(LEVEL) - {"<commands>"}


def test_import_layers_point_down():
    violations = []
    for module, path in dilnas_modules():
        own = package_of(module)
        for line, target in imported_modules(path, module):
            if target in ("dilnas", "dilnas.__version__"):
                continue
            other = package_of(target)
            if other != own and LEVEL[other] >= LEVEL[own]:
                violations.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {own} imports {target} ({other})"
                )
    assert not violations, "\n".join(violations)


def test_import_layers_checker_catches_an_upward_import(tmp_path):
    # The checker itself: an import from a higher layer is found, one from a lower layer is not.
    module = tmp_path / "bad.py"
    module.write_text("from dilnas.train.trainer import Trainer\nfrom dilnas.utils.errors import UserError\n")
    targets = [target for _, target in imported_modules(module, "dilnas.spec.bad")]
    assert [LEVEL[package_of(t)] > LEVEL["spec"] for t in targets] == [True, False]


@pytest.mark.parametrize("module", [m for m, _ in dilnas_modules() if m.startswith("dilnas.spec")])
def test_import_layers_pure_spec_loads_without_torch(module):
    code = f"import sys, {module}; bad = [m for m in ('torch', 'numpy', 'hydra') if m in sys.modules]; print(bad)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"{module} pulls in {result.stdout.strip()}"
