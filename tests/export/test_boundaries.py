"""The tree's boundaries, checked: export uses only the public names of the other packages, and nothing outside
cifar_train/models/ branches on an architecture's name."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import cifar_runtime
import cifar_train

ROOT = Path(__file__).parents[2]


def imported_names(package_dir: Path, other: str) -> dict[str, set[str]]:
    """{module path: names imported from `other` or its submodules} over a package's source files."""
    found: dict[str, set[str]] = {}
    for path in package_dir.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == other:
                found.setdefault(f"{path.name}: from {node.module}", set()).update(a.name for a in node.names)
    return found


def test_export_imports_only_the_public_names_of_train_and_runtime() -> None:
    for package in (cifar_train, cifar_runtime):
        for where, names in imported_names(ROOT / "export" / "cifar_export", package.__name__).items():
            assert where.endswith(f"from {package.__name__}"), f"{where}: import from the package, not a submodule"
            assert names <= set(package.__all__), f"{where}: {sorted(names - set(package.__all__))} not public"


def test_no_architecture_name_branches_outside_the_model_registry() -> None:
    name = r"""["'](cnn|resnet\d+|airbench\w*)["']"""
    pattern = re.compile(rf"(==|!=)\s*{name}|{name}\s*(==|!=)")
    for package in ("train/cifar_train", "export/cifar_export", "runtime/cifar_runtime"):
        for path in (ROOT / package).rglob("*.py"):
            if "models" in path.relative_to(ROOT / package).parts:
                continue
            hits = [line for line in path.read_text().splitlines() if pattern.search(line)]
            assert not hits, f"{path}: {hits}"
