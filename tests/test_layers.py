"""The floor plan: packages import only the floors below them (DESIGN.md, "Layout")."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "limit_graph"

# What each package may import from this project, besides itself.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "storage": {"core"},
    "governance": {"core", "storage"},
    "orchestration": {"core", "storage", "governance"},
    "api": {"core", "storage", "governance", "orchestration"},
    "cli": {
        "core",
        "storage",
        "governance",
        "orchestration",
        "api",
        "blocks",
        "tasks",
        "flows",
        "deployments",
        "client",
    },
    "client": {"core"},
    "blocks": {"core"},
    "tasks": {"core", "blocks"},
    "flows": {"core", "blocks", "tasks", "client"},
    "deployments": {"core", "blocks", "tasks", "flows"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "limit_graph" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_is_on_the_plan() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED)


def test_no_package_imports_a_floor_above_it() -> None:
    violations = []
    for package, allowed in ALLOWED.items():
        for path in (PACKAGE / package).rglob("*.py"):
            for target in imported_packages(path) - allowed - {package}:
                violations.append(f"{path.relative_to(PACKAGE)} imports limit_graph.{target}")
    assert violations == []
