"""Canonicalisation per row and reading a 100k-row export (pytest-benchmark)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from kruispunt.identifiers import IdentifierKind, canonical_address, canonical_bsn
from psi_node.inputs import InputSpec, read_input
from tests.support.synthetic import (
    make_network,
    messy_address,
    messy_bsn,
    random_address,
    random_bsn,
    write_csv,
)

BATCH = 10_000
FILE_ROWS = 100_000


@pytest.fixture(scope="module")
def bsn_spellings() -> list[str]:
    rng = random.Random(1)
    return [messy_bsn(random_bsn(rng), rng) for _ in range(BATCH)]


@pytest.fixture(scope="module")
def address_spellings() -> list[tuple[str, str, str, str]]:
    rng = random.Random(2)
    out = []
    for _ in range(BATCH):
        row = messy_address(*random_address(rng), rng)
        out.append((row["postcode"], row["huisnummer"], row["huisletter"], row["toevoeging"]))
    return out


@pytest.fixture(scope="module", params=["bsn", "address"])
def export_file(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, IdentifierKind]:
    kind: IdentifierKind = request.param
    net = make_network(["a"], FILE_ROWS, {}, seed=3, kind=kind)
    path = tmp_path_factory.mktemp("bench") / f"{kind}.csv"
    write_csv(path, net.rows["a"], kind, bom=True)
    return path, kind


class TestCanonicalisation:
    def test_canonical_bsn_batch(
        self, benchmark: BenchmarkFixture, bsn_spellings: list[str]
    ) -> None:
        """Canonicalise 10,000 messy BSN spellings (ops/s x 10,000 = BSNs/s)."""
        out = benchmark(lambda: [canonical_bsn(s) for s in bsn_spellings])
        assert len(out) == BATCH

    def test_canonical_address_batch(
        self, benchmark: BenchmarkFixture, address_spellings: list[tuple[str, str, str, str]]
    ) -> None:
        """Canonicalise 10,000 messy address spellings (ops/s x 10,000 = addresses/s)."""
        out = benchmark(lambda: [canonical_address(*a) for a in address_spellings])
        assert len(out) == BATCH


class TestReadInput:
    def test_read_100k_rows(
        self, benchmark: BenchmarkFixture, export_file: tuple[Path, IdentifierKind]
    ) -> None:
        """Read, validate and de-duplicate a 100,000-row messy export."""
        path, kind = export_file
        found = benchmark(read_input, InputSpec(path=path, kind=kind))
        assert found.report.valid == FILE_ROWS
        assert found.report.invalid == 0
