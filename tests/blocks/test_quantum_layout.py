"""The floor plan of ``blocks/quantum``: which module of the package may import which,
read from the source (every import, at module level or inside a function), so that no
two modules import each other and the IBM client is loaded only for ``ibm:`` targets."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import limit_graph.blocks.quantum as package

PACKAGE = Path(package.__file__).parent
NAME = "limit_graph.blocks.quantum"

# What each module may import from the package.  ``types`` is the floor: every module
# may import it, it imports none of them; the targets never import each other.
ALLOWED: dict[str, set[str]] = {
    "types": set(),
    "simulator": {"types"},
    "aer": {"types", "simulator"},
    "fake": {"types", "simulator"},
    "ibm_errors": set(),
    "ibm_credentials": {"ibm_errors"},
    "ibm_target": {"types", "ibm_errors", "ibm_credentials"},
    "ibm": {"ibm_errors", "ibm_credentials", "ibm_target"},
    "resolver": {"types", "aer", "fake", "ibm"},
    "__init__": {"types", "simulator", "aer", "fake", "resolver"},
}


def imports(path: Path) -> dict[str, bool]:
    """The package modules ``path`` imports, each with whether it does so at module level."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = set(map(id, tree.body))
    found: dict[str, bool] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path.name}: relative import"
            names = [node.module]
            if node.module == NAME:
                names = [f"{NAME}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith(f"{NAME}."):
                module = name.removeprefix(f"{NAME}.").split(".")[0]
                found[module] = found.get(module, False) or id(node) in top
    return found


def test_every_module_of_the_package_is_on_the_plan() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


def test_modules_import_only_the_floors_the_plan_allows() -> None:
    violations = [
        f"{module}.py imports {target}"
        for module in ALLOWED
        for target in set(imports(PACKAGE / f"{module}.py")) - ALLOWED[module]
    ]
    assert violations == []


def test_the_plan_has_no_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module not in done:
            for target in ALLOWED[module]:
                visit(target, (*path, module))
            done.add(module)

    for module in ALLOWED:
        visit(module, ())


def test_the_resolver_imports_the_ibm_module_only_inside_a_function() -> None:
    assert imports(PACKAGE / "resolver.py")["ibm"] is False
    sources = "".join(p.read_text(encoding="utf-8") for p in PACKAGE.glob("*.py"))
    assert "import_module" not in sources and "__import__" not in sources


def test_resolving_simulators_leaves_the_ibm_client_unimported() -> None:
    script = (
        "import sys\n"
        "from limit_graph.blocks.quantum import resolve_target\n"
        "import limit_graph.blocks.quantum.ibm\n"
        "resolve_target('aer').sample\n"
        "print(sorted(m for m in sys.modules if m.startswith('qiskit_ibm_runtime')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"
