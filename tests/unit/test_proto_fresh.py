"""The committed generated protobuf modules are exactly what `make proto` produces."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from scripts import gen_proto
from tests.support.paths import REPO

ROOT = REPO


class TestGeneratedCode:
    def test_committed_stubs_match_a_fresh_generation(self, tmp_path: Path) -> None:
        """Regenerating from proto/ into a temporary folder gives byte-identical files."""
        fresh = gen_proto.generate(tmp_path)
        assert fresh, "the generator wrote nothing"
        for path in fresh:
            rel = path.relative_to(tmp_path)
            committed = ROOT / rel
            assert committed.exists(), f"{rel} is generated but not committed (run make proto)"
            assert committed.read_bytes() == path.read_bytes(), f"{rel} is stale: run make proto"
        generated = {p.relative_to(tmp_path) for p in fresh}
        extra = {
            p.relative_to(ROOT) for p in (ROOT / "kruispunt" / "v1").glob("*_pb2*.py*")
        } - generated
        assert not extra, f"committed stubs without a .proto: {sorted(map(str, extra))}"

    def test_generated_imports_are_package_relative(self) -> None:
        """No generated module imports kruispunt.v1 absolutely (it must work when vendored)."""
        for path in (ROOT / "kruispunt" / "v1").glob("*_pb2*.py"):
            text = path.read_text()
            assert "from kruispunt.v1 import" not in text, path.name
            assert "import kruispunt.v1" not in text, path.name

    @pytest.mark.parametrize("module", ["common_pb2", "node_pb2", "coordinator_pb2"])
    def test_stubs_load_on_the_pinned_protobuf_runtime(self, module: str) -> None:
        """Generated code loads on protobuf 6.30.2 (openmined-psi's pin): protoc was not newer."""
        from google.protobuf import __version__ as runtime

        __import__(f"kruispunt.v1.{module}")
        assert runtime == "6.30.2"
        assert f"kruispunt.v1.{module}" in sys.modules
