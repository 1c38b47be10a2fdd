"""Static checks of the code's shape, read with `ast`: imports, sys.path edits, private names.

`tests/unit/test_architecture.py` runs them over the repository and over small
synthetic trees that prove each check fires. Nothing here imports the code it
reads, so a broken module is still checked (and a cycle cannot hide behind an
ImportError).
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("kruispunt", "psi_node", "coordinator")
GENERATED = ("kruispunt.v1",)
"""Generated protobuf modules (`make proto`): neither checked nor counted as ours."""


@dataclass(frozen=True)
class Finding:
    """One violation: where it is and what is wrong, as a line a developer can act on."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _generated(name: str) -> bool:
    return any(name == g or name.startswith(g + ".") for g in GENERATED)


def find_modules(root: Path, packages: Sequence[str] = PACKAGES) -> dict[str, Path]:
    """Dotted name -> file of every module under the given top-level packages (not generated)."""
    modules: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if not _generated(name):
                modules[name] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """`if TYPE_CHECKING:` or `if typing.TYPE_CHECKING:`."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _walk_runtime(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below `node` that runs at some point: skips `if TYPE_CHECKING:` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield other
                yield from _walk_runtime(other)
            continue
        yield child
        yield from _walk_runtime(child)


def _base_package(module: str, path: Path) -> str:
    """The package a relative import in `module` is resolved against."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_from(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module name a `from X import ...` reads from."""
    if node.level == 0:
        return node.module or ""
    base = _base_package(module, path).split(".")
    if node.level > 1:
        base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _ours(name: str, packages: Sequence[str]) -> bool:
    return name.split(".")[0] in packages and not _generated(name)


@dataclass(frozen=True)
class _Import:
    """One imported name: the module it comes from, the name, the line, the local binding."""

    source: str
    """The module named after `from`, or the module of a plain `import`."""
    name: str | None
    """The imported attribute (`from source import name`), None for a plain `import`."""
    bound: str
    """The name the import binds in the importing module."""
    line: int


def _imports(module: str, path: Path, tree: ast.AST) -> Iterator[_Import]:
    for node in _walk_runtime(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                yield _Import(alias.name, None, bound, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(module, path, node)
            for alias in node.names:
                yield _Import(source, alias.name, alias.asname or alias.name, node.lineno)


def import_graph(
    modules: Mapping[str, Path], packages: Sequence[str] = PACKAGES
) -> dict[str, dict[str, int]]:
    """module -> {module it imports: line of the first such import}, among `modules` only.

    Module-level and function-level imports count; `if TYPE_CHECKING:` imports do
    not (they never run). `from a import b` is an edge to a.b when that is a
    module, else to a.
    """
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        edges = graph.setdefault(module, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for imp in _imports(module, path, tree):
            if not _ours(imp.source, packages):
                continue
            target = imp.source
            if imp.name is not None and f"{imp.source}.{imp.name}" in modules:
                target = f"{imp.source}.{imp.name}"
            while target and target not in modules:  # `import a.b.c` where c is not a module
                target = target.rpartition(".")[0]
            if target and target != module:
                edges.setdefault(target, imp.line)
    return graph


def find_cycles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """One import circle per strongly connected component: [a, b, ..., a], sorted.

    Tarjan's algorithm finds the components; a breadth-first search inside each
    gives the shortest circle through its smallest module, so the report is stable.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)

    cycles = []
    for component in components:
        members, start = set(component), component[0]
        previous: dict[str, str] = {}
        frontier, found = [start], None
        while frontier and found is None:
            nxt = []
            for v in frontier:
                for w in sorted(graph.get(v, {})):
                    if w not in members:
                        continue
                    if w == start:
                        found = v
                        break
                    if w not in previous:
                        previous[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            frontier = nxt
        path = [start]
        v = found if found is not None else start
        while v != start:
            path.append(v)
            v = previous[v]
        cycles.append([start, *reversed(path[1:]), start])
    return sorted(cycles)


def import_chain(
    graph: Mapping[str, Mapping[str, int]], start: str, wanted: Callable[[str], bool]
) -> list[str] | None:
    """The shortest import chain [start, ..., m] to a module m that `wanted` accepts, or None.

    Breadth-first over the graph in sorted order, so the chain reported is stable;
    `describe_cycle` prints it with the line of every import in it.
    """
    previous: dict[str, str] = {}
    frontier, seen = [start], {start}
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w in seen:
                    continue
                seen.add(w)
                previous[w] = v
                if wanted(w):
                    chain = [w]
                    while chain[-1] != start:
                        chain.append(previous[chain[-1]])
                    return chain[::-1]
                nxt.append(w)
        frontier = nxt
    return None


def describe_cycle(cycle: Sequence[str], graph: Mapping[str, Mapping[str, int]]) -> str:
    """'a -> b (a:12) -> a (b:3)': each step with the line of the import that makes it.

    Takes an import chain (`import_chain`) as well as a circle.
    """
    steps = [cycle[0]]
    for a, b in itertools.pairwise(cycle):
        steps.append(f"{b} ({a}:{graph[a][b]})")
    return " -> ".join(steps)


def sys_path_edits(files: Iterable[Path], root: Path) -> list[Finding]:
    """Every call of sys.path.insert / sys.path.append in the files (imports stay declarative)."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("insert", "append")
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "path"
                and isinstance(node.func.value.value, ast.Name)
                and node.func.value.value.id == "sys"
            ):
                rel = path.relative_to(root).as_posix()
                found.append(Finding(rel, node.lineno, f"sys.path.{node.func.attr}"))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(
    files: Mapping[str, Path], root: Path, packages: Sequence[str] = PACKAGES
) -> list[Finding]:
    """Private names of our packages used from another module.

    Flags `from ours import _x` and `alias._x` where `alias` is bound by an
    import from our packages (a module, or an object imported from one).
    `files` maps a module name (for relative imports) to its file; dunder names
    and the generated modules are left alone.
    """
    found = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = path.relative_to(root).as_posix()
        imported: dict[str, str] = {}  # bound name -> what it is, for messages
        for imp in _imports(module, path, tree):
            if not _ours(imp.source, packages):
                continue
            if imp.name is None:
                # `import a.b` binds `a`; `import a.b as x` binds x to a.b.
                top = imp.source.split(".")[0]
                imported[imp.bound] = top if imp.bound == top else imp.source
                continue
            if _private(imp.name):
                found.append(Finding(rel, imp.line, f"imports private {imp.source}.{imp.name}"))
            imported[imp.bound] = f"{imp.source}.{imp.name}"
        for node in _walk_runtime(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            chain, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                chain.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in imported:
                what = ".".join([imported[base.id], *reversed(chain[1:])])
                found.append(Finding(rel, node.lineno, f"uses private {what}.{node.attr}"))
    return sorted(found, key=lambda f: (f.path, f.line, f.message))
