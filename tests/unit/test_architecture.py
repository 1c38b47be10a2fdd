"""The code's shape: no import circles, no sys.path edits, no private names across modules.

Each check runs over the repository and over a small synthetic tree that
proves it fires; the findings name the file, the line and the modules.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import architecture as arch
from tests.support.paths import REPO


def tracked_python_files() -> list[Path]:
    """Every .py file git tracks in the repository (and still on disk)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [REPO / name for name in listed.split("\0") if name and (REPO / name).exists()]


def tooling_modules() -> dict[str, Path]:
    """Module name -> file of the tracked tests, benchmarks and scripts."""
    out = {}
    for path in tracked_python_files():
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[0] in ("tests", "benchmarks", "scripts"):
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write {relative path: source} under root, with the packages' __init__.py files."""
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
        path.write_text(source, encoding="utf-8")
    return root


def cycles_in(root: Path, packages: tuple[str, ...] = ("pkg",)) -> list[str]:
    graph = arch.import_graph(arch.find_modules(root, packages), packages)
    return [arch.describe_cycle(c, graph) for c in arch.find_cycles(graph)]


def private_in(root: Path, packages: tuple[str, ...] = ("pkg",)) -> list[str]:
    return [str(f) for f in arch.private_uses(arch.find_modules(root, packages), root, packages)]


def is_doctor(module: str) -> bool:
    """A diagnostics module: `kruispunt.doctor`, `psi_node.doctor`, `coordinator.doctor`."""
    return module.rpartition(".")[2] == "doctor"


class TestRepository:
    def test_no_import_cycles(self) -> None:
        """No module of kruispunt, psi_node or coordinator reaches itself through imports."""
        graph = arch.import_graph(arch.find_modules(REPO))
        cycles = [arch.describe_cycle(c, graph) for c in arch.find_cycles(graph)]
        assert not cycles, "import cycles:\n" + "\n".join(cycles)

    def test_no_sys_path_edits(self) -> None:
        """No tracked .py file edits sys.path: everything imports from the repository root."""
        found = arch.sys_path_edits(tracked_python_files(), REPO)
        assert not found, "\n".join(map(str, found))

    def test_no_private_names_across_product_modules(self) -> None:
        """No module of ours imports or reads another module's _private names."""
        found = arch.private_uses(arch.find_modules(REPO), REPO)
        assert not found, "\n".join(map(str, found))

    def test_no_private_product_names_in_tests_benchmarks_or_scripts(self) -> None:
        """Tests, benchmarks and scripts use only the public names of our packages."""
        found = arch.private_uses(tooling_modules(), REPO)
        assert not found, "\n".join(map(str, found))

    @pytest.mark.parametrize("server", ["psi_node.server", "coordinator.server"])
    def test_servers_do_not_load_the_diagnostics(self, server: str) -> None:
        """A serving process never imports a doctor module, directly or through our packages."""
        graph = arch.import_graph(arch.find_modules(REPO))
        assert server in graph
        chain = arch.import_chain(graph, server, is_doctor)
        assert chain is None, "serving loads the doctor: " + arch.describe_cycle(chain, graph)

    def test_the_checks_see_the_whole_product(self) -> None:
        """Every product package is read, the generated protobuf modules are not."""
        modules = arch.find_modules(REPO)
        assert {"kruispunt.identifiers", "psi_node.server", "coordinator.server"} <= set(modules)
        assert not [m for m in modules if m.startswith("kruispunt.v1")]


class TestCycleCheck:
    def test_module_level_cycle_is_named(self, tmp_path: Path) -> None:
        """A circle of three modules is reported once, with the line of every import in it."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "from pkg import b\n",
                "pkg/b.py": "import pkg.c\n",
                "pkg/c.py": "x = 1\nfrom pkg.a import thing\n",
            },
        )
        assert cycles_in(tmp_path) == [
            "pkg.a -> pkg.b (pkg.a:1) -> pkg.c (pkg.b:1) -> pkg.a (pkg.c:2)"
        ]

    def test_function_level_and_relative_imports_count(self, tmp_path: Path) -> None:
        """An import inside a function, written relatively, still closes a circle."""
        write_tree(
            tmp_path,
            {
                "pkg/sub/a.py": "from ..b import f\n",
                "pkg/b.py": "def f():\n    from .sub import a\n    return a\n",
            },
        )
        assert cycles_in(tmp_path) == ["pkg.b -> pkg.sub.a (pkg.b:2) -> pkg.b (pkg.sub.a:1)"]

    def test_type_checking_imports_do_not_count(self, tmp_path: Path) -> None:
        """Imports under `if TYPE_CHECKING:` never run, so they make no circle."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "from pkg import b\n",
                "pkg/b.py": (
                    "import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\n"
                    "else:\n    pass\n"
                ),
            },
        )
        assert cycles_in(tmp_path) == []

    def test_else_branch_of_type_checking_counts(self, tmp_path: Path) -> None:
        """The else of `if TYPE_CHECKING:` runs, so its imports are edges."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "from pkg import b\n",
                "pkg/b.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\n"
                    "else:\n    import pkg.a\n"
                ),
            },
        )
        assert cycles_in(tmp_path) == ["pkg.a -> pkg.b (pkg.a:1) -> pkg.a (pkg.b:5)"]

    def test_acyclic_tree_and_other_packages_pass(self, tmp_path: Path) -> None:
        """A chain is fine, and imports of modules outside our packages are ignored."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "import json\nfrom pkg import b\n",
                "pkg/b.py": "from pkg.c import x\nimport other.a\n",
                "pkg/c.py": "x = 1\n",
                "other/a.py": "import pkg.a\n",
            },
        )
        assert cycles_in(tmp_path) == []

    def test_two_separate_cycles_are_both_reported(self, tmp_path: Path) -> None:
        """Each strongly connected group of modules gives one line."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "import pkg.b\n",
                "pkg/b.py": "import pkg.a\n",
                "pkg/c.py": "import pkg.d\n",
                "pkg/d.py": "import pkg.c\n",
            },
        )
        assert cycles_in(tmp_path) == [
            "pkg.a -> pkg.b (pkg.a:1) -> pkg.a (pkg.b:1)",
            "pkg.c -> pkg.d (pkg.c:1) -> pkg.c (pkg.d:1)",
        ]


class TestImportChain:
    def test_transitive_import_is_found_with_its_lines(self, tmp_path: Path) -> None:
        """A doctor reached through two other modules is reported with every import line."""
        write_tree(
            tmp_path,
            {
                "pkg/server.py": "import json\nfrom pkg import certs\n",
                "pkg/certs.py": "def f():\n    from pkg.sub import doctor\n",
                "pkg/sub/doctor.py": "x = 1\n",
            },
        )
        graph = arch.import_graph(arch.find_modules(tmp_path, ("pkg",)), ("pkg",))
        chain = arch.import_chain(graph, "pkg.server", is_doctor)
        assert chain == ["pkg.server", "pkg.certs", "pkg.sub.doctor"]
        assert arch.describe_cycle(chain, graph) == (
            "pkg.server -> pkg.certs (pkg.server:2) -> pkg.sub.doctor (pkg.certs:2)"
        )

    def test_no_chain_when_the_module_is_out_of_reach(self, tmp_path: Path) -> None:
        """A doctor that only imports the server, or sits behind TYPE_CHECKING, is not reached."""
        write_tree(
            tmp_path,
            {
                "pkg/server.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.doctor\n"
                ),
                "pkg/doctor.py": "import pkg.server\n",
            },
        )
        graph = arch.import_graph(arch.find_modules(tmp_path, ("pkg",)), ("pkg",))
        assert arch.import_chain(graph, "pkg.server", is_doctor) is None
        assert arch.import_chain(graph, "pkg.doctor", lambda m: m == "pkg.server") == [
            "pkg.doctor",
            "pkg.server",
        ]


class TestSysPathCheck:
    def test_insert_and_append_are_found(self, tmp_path: Path) -> None:
        """sys.path.insert and sys.path.append are reported with file and line."""
        write_tree(
            tmp_path,
            {
                "x.py": "import sys\n\nsys.path.insert(0, 'here')\n",
                "y.py": "import sys\ndef f():\n    sys.path.append('there')\n",
                "z.py": "import sys\nprint(sys.path)\ntext = 'sys.path.insert(0, x)'\n",
            },
        )
        files = sorted(tmp_path.glob("*.py"))
        assert [str(f) for f in arch.sys_path_edits(files, tmp_path)] == [
            "x.py:3: sys.path.insert",
            "y.py:3: sys.path.append",
        ]


class TestPrivateNameCheck:
    def test_from_import_of_a_private_name_is_found(self, tmp_path: Path) -> None:
        """`from pkg.a import _helper` is reported; dunders and public names are not."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": "def _helper(): pass\n__all__ = []\n",
                "pkg/b.py": "from pkg.a import _helper, __all__\nfrom pkg import a\n",
                "pkg/c.py": "from .a import _helper as h\n",
            },
        )
        assert private_in(tmp_path) == [
            "pkg/b.py:1: imports private pkg.a._helper",
            "pkg/c.py:1: imports private pkg.a._helper",
        ]

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            ("from pkg import a\na._helper()\n", "uses private pkg.a._helper"),
            ("import pkg.a\npkg.a._helper()\n", "uses private pkg.a._helper"),
            ("import pkg.a as alias\nalias._helper()\n", "uses private pkg.a._helper"),
            ("from pkg.a import Thing\nThing._secret\n", "uses private pkg.a.Thing._secret"),
            (
                "def f():\n    from pkg import a\n    return a._helper\n",
                "uses private pkg.a._helper",
            ),
        ],
    )
    def test_private_attribute_of_an_imported_name_is_found(
        self, tmp_path: Path, source: str, message: str
    ) -> None:
        """`alias._x` on a module or object imported from our packages is reported."""
        write_tree(tmp_path, {"pkg/a.py": "class Thing: pass\n", "pkg/b.py": source})
        found = private_in(tmp_path)
        assert len(found) == 1
        assert found[0].startswith("pkg/b.py:")
        assert found[0].endswith(message)

    def test_own_and_foreign_private_names_are_left_alone(self, tmp_path: Path) -> None:
        """A module's own _names, self._x, dunders and other libraries' privates pass."""
        write_tree(
            tmp_path,
            {
                "pkg/a.py": (
                    "import os\nfrom collections import abc\nfrom pkg import b\n"
                    "def _own(): pass\n_own()\nos._exit\nabc._x\nb.__name__\n"
                    "class C:\n    def f(self):\n        return self._y\n"
                ),
                "pkg/b.py": "x = 1\n",
            },
        )
        assert private_in(tmp_path) == []

    def test_generated_modules_are_excluded(self, tmp_path: Path) -> None:
        """The generated protobuf modules (kruispunt.v1) are neither read nor flagged."""
        write_tree(
            tmp_path,
            {
                "kruispunt/v1/node_pb2.py": "from kruispunt.wire import _x\n",
                "kruispunt/wire.py": "from kruispunt.v1 import node_pb2\nnode_pb2._DESC\n",
            },
        )
        assert private_in(tmp_path, ("kruispunt",)) == []
