"""No import cycle among the modules under operators/.

Every import statement counts, at module level or inside a function: a function-level import that
closes a circle only moves its failure from import time to the first call. Not counted: a package's
own import by its submodules (Python runs a package's __init__ before any submodule of it), and
modules named by a string (importlib: a backend chosen by --backend, a spec looked up by name)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "operators"


def module_files(root: Path) -> dict[str, Path]:
    files = {}
    for path in (root / PACKAGE).rglob("*.py"):
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `module` (its source at `path`) imports anywhere in its body."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            names |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {deepest_known(name, known) for name in names} - {None}


def deepest_known(name: str, known: set[str]) -> str | None:
    """`a.b.c` as the longest of a.b.c, a.b, a that is a module of the package."""
    parts = name.split(".")
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in known), None)


def import_graph(root: Path) -> dict[str, set[str]]:
    files = module_files(root)
    return {module: imported(module, path, set(files)) for module, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[str]:
    """Each strongly connected group of modules, as one circle through it and the group's members."""
    order, low, stack, found = {}, {}, [], []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        order[module] = low[module] = len(order)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            group = {stack.pop()}
            while module not in group:
                group.add(stack.pop())
            if len(group) > 1 or module in graph[module]:
                found.append(f"{' -> '.join(circle(graph, module, group))} (the group: {', '.join(sorted(group))})")

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return found


def circle(graph: dict[str, set[str]], start: str, group: set[str]) -> list[str]:
    """The shortest path from `start` back to itself inside `group` (breadth first)."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for target in sorted(graph[module] & group):
                if target == start:
                    return [*paths[module], start]
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected group without a way back")


def test_the_graph_sees_module_and_function_level_imports():
    graph = import_graph(ROOT)
    assert "operators.core.checker" in graph["operators.run"]
    assert "operators.backends.torch_control" in graph["operators.model.next_token"]  # inside a function
    assert "operators.core.strategies" in graph["operators.rms_norm"]  # from operators import strategies


def test_no_import_cycle_among_the_modules_of_operators():
    found = cycles(import_graph(ROOT))
    assert not found, "import cycles:\n" + "\n".join(found)
