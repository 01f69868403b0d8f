"""The operator list cannot drift from the specs: every module in front of operators/ that defines
`spec()` is a registered operator, and every registered operator has such a module."""

from __future__ import annotations

import ast
from pathlib import Path

import operators.core.registry as registry

ENTRY_POINTS = {"run", "integrate", "pytest_plugin", "__init__", "__main__"}


def spec_modules() -> set[str]:
    front = Path(registry.__file__).parent.parent
    found = set()
    for path in front.glob("*.py"):
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.FunctionDef) and node.name == "spec" for node in tree.body):
            found.add(path.stem)
    return found


def test_every_spec_module_is_registered_and_nothing_else():
    assert spec_modules() == set(registry.OPERATOR_NAMES)
    front = {p.stem for p in Path(registry.__file__).parent.parent.glob("*.py")}
    assert front - spec_modules() <= ENTRY_POINTS, "only specs and entry points stand in front of operators/"
    assert all(registry.get_spec(name).name == name for name in registry.OPERATOR_NAMES)
