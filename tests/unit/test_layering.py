"""The package's layers, as README's layout draws them: model packages never import training, and
the core never imports the operations tooling (ops/, hub/, demo/), which only the CLI names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tiny_audio

PACKAGE = Path(tiny_audio.__file__).parent
OPERATIONS = ("tiny_audio.ops", "tiny_audio.hub", "tiny_audio.demo")
# Operations code, and the command line that registers it (by name, imported when run).
NOT_CORE = ("ops", "hub", "hub_templates", "demo", "cli.py")


def imports(path: Path) -> set[str]:
    """Every module a file imports by absolute name, at the top or inside a function; `from A
    import B` counts as A and as A.B, which may be a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(f"{package}.") for package in packages)


def offending(files: list[Path], packages: tuple[str, ...]) -> dict[str, list[str]]:
    found = {
        str(path.relative_to(PACKAGE)): sorted(n for n in imports(path) if within(n, packages))
        for path in files
    }
    return {path: names for path, names in found.items() if names}


def test_the_core_never_imports_operations_tooling() -> None:
    core = [
        path for path in PACKAGE.rglob("*.py") if path.relative_to(PACKAGE).parts[0] not in NOT_CORE
    ]
    assert offending(core, OPERATIONS) == {}


@pytest.mark.parametrize("package", ["model", "lact"])
def test_model_packages_never_import_training(package: str) -> None:
    assert offending(sorted((PACKAGE / package).rglob("*.py")), ("tiny_audio.train",)) == {}
