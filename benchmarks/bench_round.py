"""A real round through `tests/support/netlab.py`, and the parts of the round benchmarks.

`make bench` times a small network round (two nodes and a coordinator as
separate processes, mutual TLS on loopback); `make test` runs it once and
checks what the benchmarks rely on: the cost model, /proc readings, the
round benchmark's JSON document end to end, and the sweep's PNG writer.
The big runs are `make bench-round` and `make bench-sweep` (docs/performance.md).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks import round_bench as rb
from benchmarks import sweep
from tests.support.netlab import (
    LocalNetwork,
    NetlabError,
    RoundRun,
    bench_partners,
    descendants,
    pair_overlaps,
    read_proc,
    read_tree,
)

RECORDS = 150


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Two nodes of RECORDS rows and a coordinator, built with the CLIs and started."""
    spec = rb.network_spec(2, RECORDS, 0.2, 2, 1, kind="bsn", seed=11, bilateral=False)
    with LocalNetwork(tmp_path_factory.mktemp("netlab"), spec) as net:
        net.build()
        net.start()
        yield net


class TestNetworkRound:
    """A round on real processes, as the benchmarks run it."""

    def test_round(self, benchmark: BenchmarkFixture, network: LocalNetwork) -> None:
        """A two-node round completes and flags exactly the planted shared households."""
        run: RoundRun = benchmark.pedantic(  # type: ignore[no-untyped-call]
            network.run_round, args=(rb.NETWORK_PURPOSE,), rounds=3
        )
        flagged = {p: v["flagged_count"] for p, v in run.summary["partners"].items()}
        assert flagged == network.expected_flagged(2)
        assert flagged["p01"] == round(0.2 * RECORDS)

    def test_measure_reads_every_process(self, network: LocalNetwork) -> None:
        """measure() reports phases, set sizes, and CPU and peak RSS of every server process."""
        m = rb.measure(network, rb.NETWORK_PURPOSE, "network", check=True)
        assert m.correct is True
        assert set(m.processes) == {"p01", "p02", "coordinator"}
        assert all(c.peak_rss_mib > 10 for c in m.processes.values())
        assert m.processes["p01"].cpu_seconds > 0
        # The node alone: its group work runs on its own threads (the native core), so its
        # tree is itself (with the libsodium process pool it was four processes).
        assert m.processes["p01"].processes == 1
        assert m.processes["p01"].tree_peak_rss_mib == m.processes["p01"].peak_rss_mib
        assert {"propose", "blind", "evaluate", "finalize", "reveal", "tally", "deliver"} <= set(
            m.phases
        )
        assert m.set_sizes == {"p01": RECORDS, "p02": RECORDS}


class TestCostModel:
    """The operation counts and the ideal time the efficiency is measured against."""

    @pytest.mark.parametrize(("n", "m"), [(2, 100_000), (5, 100_000), (34, 10_000)])
    def test_counts(self, n: int, m: int) -> None:
        """n partners of m: (n + 1) * n * m multiplications and n * m hashes."""
        assert rb.cost_model([m] * n) == ((n + 1) * n * m, n * m)

    def test_counts_uneven_sets(self) -> None:
        """Own records cost 2 mults each, every other partner's record 1, per partner."""
        sizes = [10, 20, 30]
        own = 2 * sum(sizes)
        others = sum(sum(sizes) - s for s in sizes)
        assert rb.cost_model(sizes) == (own + others, sum(sizes))

    def test_ideal(self) -> None:
        """Ideal time is (mults x mult cost + hashes x hash cost) / cores."""
        cal = rb.Calibration(
            cores=2,
            mult_seconds=80e-6,
            hash_seconds=30e-6,
            mult_seconds_one_worker=70e-6,
            hash_seconds_one_worker=25e-6,
            others_cores=0.0,
        )
        assert cal.ideal(600_000, 200_000, 2) == pytest.approx((48 + 6) / 2)

    def test_calibration_measures_positive_costs(self) -> None:
        """Calibrating on a few hundred inputs gives per-core costs between 1 us and 10 ms."""
        cal = rb.calibrate([f"bsn:{i:09d}".encode() for i in range(300)], reps=1, attempts=1)
        for cost in (cal.mult_seconds, cal.hash_seconds, cal.mult_seconds_one_worker):
            assert 1e-6 < cost < 1e-2


class TestProc:
    """Reading CPU time and peak RSS from /proc."""

    def test_own_process(self) -> None:
        """This process has CPU time and a peak RSS at least its current RSS."""
        s = read_proc(os.getpid())
        assert s.cpu_seconds > 0
        assert s.peak_rss_bytes >= s.rss_bytes > 0

    def test_tree_counts_children(self) -> None:
        """read_tree adds the CPU of live child processes, which read_proc does not see."""
        busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
        child = subprocess.Popen(
            [sys.executable, "-c", busy + "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 20
            while read_proc(child.pid).cpu_seconds < 0.3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert child.pid in descendants(os.getpid())
            tree = read_tree(os.getpid())
            assert tree.processes >= 2
            assert tree.cpu_seconds >= read_proc(os.getpid()).cpu_seconds + 0.29
        finally:
            child.communicate(b"")

    def test_gone_process(self) -> None:
        """A process that has exited raises NetlabError, not OSError."""
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        with pytest.raises(NetlabError, match="gone"):
            read_proc(proc.pid)

    def test_others_cores_is_not_negative(self) -> None:
        """The noise meter never reports a negative number of cores."""
        assert rb.CpuMeter().others_cores() >= 0


class TestNetlabHelpers:
    """Partner lists and planted overlaps of benchmark networks."""

    def test_partners(self) -> None:
        """bench_partners numbers partners with a fixed width, all of the given size."""
        parts = bench_partners(12, 5)
        assert [p.id for p in parts[:2]] == ["p01", "p02"]
        assert parts[-1].id == "p12"
        assert {p.size for p in parts} == {5}

    def test_overlaps(self) -> None:
        """A fraction f of m plants f * m * n / 2 shared pairs; zero plants none."""
        assert pair_overlaps(2, 1000, 0.1) == {2: 100}
        assert pair_overlaps(5, 1000, 0.1) == {2: 250}
        assert pair_overlaps(3, 1000, 0.0) == {}
        with pytest.raises(ValueError, match="fraction"):
            pair_overlaps(2, 10, 1.0)


@pytest.fixture(scope="module")
def bench_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """round_bench.py's JSON for a small two-node run with every baseline."""
    out = tmp_path_factory.mktemp("round_bench") / "r.json"
    code = rb.main(
        [
            "--partners",
            "2",
            "--records",
            "120",
            "--kind",
            "bsn",
            "--wait-quiet",
            "0",
            "--openmined",
            "gcs-size",
            "--repeat",
            "2",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    return out


class TestRoundBenchScript:
    """round_bench.py from the command line's point of view."""

    def test_json_document(self, bench_json: Path) -> None:
        """A small run writes rounds (fastest of --repeat), openmined-psi runs, ratios."""
        doc = json.loads(bench_json.read_text())
        net = doc["rounds"]["network"]
        assert net["correct"] is True
        assert net["mults"] == 3 * 240
        assert net["hashes"] == 240
        assert 0 < net["efficiency"] < 1.5
        assert net["efficiency"] == pytest.approx(net["cpu_efficiency"] * net["utilisation"])
        assert len(net["extra"]["all_seconds"]) == 2
        assert net["seconds"] == min(net["extra"]["all_seconds"])
        assert doc["openmined"]["runs"][0]["result"] == doc["openmined"]["intersection_truth"]
        assert len(doc["openmined"]["runs"][0]["all_seconds"]) == 2
        assert doc["ratios"]["network_n2_vs_openmined"] > 0
        # The defences' cost model ran on this round's shape: 2 nodes, 120 records each.
        assert net["security"]["counts"]["signs"] == 6
        # (3n - 1) x M: the 2n x M of the hops, and the origin's check of the proof's source.
        assert net["security"]["counts"]["digested_points"] == (3 * 2 - 1) * 240
        assert net["security"]["counts"]["proven_points"] == (2 - 1) * 240
        assert 0 < net["security_seconds"] < net["seconds"]
        assert net["security_share"] == pytest.approx(net["security_seconds"] / net["seconds"])

    def test_from_json_takes_a_cheaper_calibration(self, bench_json: Path, tmp_path: Path) -> None:
        """--from-json with --calibration-from recomputes the ideal with the cheaper costs."""
        doc = json.loads(bench_json.read_text())
        cheaper = dict(doc["calibration"])
        cheaper["mult_seconds"] /= 2
        cheaper["hash_seconds"] /= 2
        other = tmp_path / "other.json"
        other.write_text(json.dumps({"calibration": cheaper}))
        out = tmp_path / "again.json"
        code = rb.main(
            ["--from-json", str(bench_json), "--calibration-from", str(other), "--json", str(out)]
        )
        assert code == 0
        again = json.loads(out.read_text())
        before, after = doc["rounds"]["network"], again["rounds"]["network"]
        assert after["ideal_seconds"] == pytest.approx(before["ideal_seconds"] / 2)
        assert after["efficiency"] == pytest.approx(before["efficiency"] / 2)
        assert again["calibration_sources"][-1] == str(other)

    def test_unusable_calibration_file(self, bench_json: Path, tmp_path: Path) -> None:
        """A --calibration-from file without a calibration ends with exit 1, not a traceback."""
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        assert rb.main(["--from-json", str(bench_json), "--calibration-from", str(bad)]) == 1

    def test_bad_arguments(self) -> None:
        """A threshold above the number of partners is refused by the parser."""
        with pytest.raises(SystemExit):
            rb.parse_args(["--partners", "2", "--threshold", "3"])


class TestSweep:
    """The sweep's plan, its number lists and its PNG writer."""

    def test_plan_runs_a_shared_point_once(self) -> None:
        """The point in both series (n fixed, m fixed) is planned once."""
        args = sweep.parse_args(["--m", "10k,20k", "--n", "2,3", "--json", "", "--png", ""])
        points = [(p.n, p.m) for p in sweep.plan(args)]
        assert points == [(2, 10_000), (2, 20_000), (3, 10_000)]

    def test_recompute(self) -> None:
        """recompute() sets every point's ideal and efficiencies from one calibration."""
        cal = rb.Calibration(
            cores=2,
            mult_seconds=1e-4,
            hash_seconds=0.0,
            mult_seconds_one_worker=1e-4,
            hash_seconds_one_worker=0.0,
            others_cores=0.0,
        )
        point = {
            "mults": 1000,
            "hashes": 10,
            "seconds": 0.1,
            "phases": {"blind": 0.05},
            "processes": {"p01": {"cpu_seconds": 0.1}, "p02": {"cpu_seconds": 0.1}},
        }
        doc: dict[str, object] = {"points": [point]}
        sweep.recompute(doc, cal)
        assert point["ideal_seconds"] == pytest.approx(0.05)
        assert point["efficiency"] == pytest.approx(0.5)
        assert point["crypto_efficiency"] == pytest.approx(1.0)
        assert point["utilisation"] == pytest.approx(1.0)

    def test_number_lists(self) -> None:
        """Lists accept k and m suffixes."""
        assert sweep._int_list("10k, 1m,5") == [10_000, 1_000_000, 5]

    def test_png(self) -> None:
        """The canvas encodes as a valid PNG whose pixels are what was drawn."""
        c = sweep.Canvas(7, 3)
        c.set(2, 1, sweep.BLUE)
        data = c.png()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        _length, kind = struct.unpack(">I4s", data[8:16])
        assert kind == b"IHDR"
        assert struct.unpack(">II", data[16:24]) == (7, 3)
        idat = data.index(b"IDAT")
        size = struct.unpack(">I", data[idat - 4 : idat])[0]
        raw = zlib.decompress(data[idat + 4 : idat + 4 + size])
        assert len(raw) == 3 * (1 + 3 * 7)
        row = raw[1 * 22 + 1 : 2 * 22]
        assert row[6:9] == bytes(sweep.BLUE)
        assert row[0:3] == bytes(sweep.WHITE)

    def test_chart(self) -> None:
        """A sweep document draws as a PNG with both panels."""
        doc = {
            "machine": {"nproc": 2, "date": "2026-01-01 00:00 UTC"},
            "parameters": {"n_fixed": 2, "m_fixed": 1000},
            "points": [
                {
                    "series": "m",
                    "n": 2,
                    "m": m,
                    "seconds": m / 500,
                    "ideal_seconds": m / 600,
                    "openmined": {"seconds": m / 300},
                }
                for m in (1000, 3000)
            ]
            + [{"series": "n", "n": 3, "m": 1000, "seconds": 5.0, "ideal_seconds": 4.0}],
        }
        assert sweep.chart(doc)[:8] == b"\x89PNG\r\n\x1a\n"
