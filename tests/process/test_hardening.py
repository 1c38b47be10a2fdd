"""Real server processes write no core dumps, and run under W^X: `psi-node serve`,
`psi-coordinator serve`.

A network of two nodes and a coordinator (`tests/support/netlab.py`), each its own process
started through the console scripts as systemd would start it, minus the unit's LimitCORE=0:
so a core limit of 0 here is the servers' own doing (`kruispunt.hardening`). The test
starts them with a core limit that allows dumps, to see that the servers lower it.
A second network is started through `tests.support.wx_launch`, under the kernel's W^X rule.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netlab import (
    LocalNetwork,
    NetworkSpec,
    PurposeSpec,
    bench_partners,
    descendants,
    read_results,
)
from tests.support.paths import REPO

PURPOSE = PurposeSpec(id="signalen", max_set_size=100)
CORE_LINE = re.compile(r"^Max core file size\s+(\S+)\s+(\S+)", re.MULTILINE)


def core_limit(pid: int) -> tuple[str, str]:
    """Soft and hard core size limit of a live process, as /proc/PID/limits shows them."""
    found = CORE_LINE.search(Path(f"/proc/{pid}/limits").read_text())
    assert found, f"/proc/{pid}/limits has no core size line"
    return found[1], found[2]


def cmdline(pid: int) -> bytes:
    """The command line of a live process (NUL-separated)."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def parent(pid: int) -> int:
    """The parent pid of a live process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Two nodes of 40 rows sharing 10 households, and a coordinator, started with dumps allowed."""
    spec = NetworkSpec(
        network="harden",
        partners=bench_partners(2, 40),
        overlaps={2: 10},
        purposes=(PURPOSE,),
        log_level="warning",
    )
    # Children inherit the limit: start the servers with core dumps allowed (unlimited if
    # we may raise the hard limit, else up to it), so that a 0 below is the servers' doing.
    before = resource.getrlimit(resource.RLIMIT_CORE)
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (before[1], before[1]))
    try:
        with LocalNetwork(tmp_path_factory.mktemp("harden"), spec) as net:
            net.build()
            net.start()
            yield net
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, before)


class TestNoCoreDumps:
    def test_servers_run_with_a_core_limit_of_zero_and_start_no_workers(
        self, network: LocalNetwork
    ) -> None:
        """After a round, nodes and coordinator show core size 0 0, though they were started
        with dumps allowed, and a node has no child process that could hold a key (its group
        work runs on its own threads); the round's results are the ground truth."""
        assert resource.getrlimit(resource.RLIMIT_CORE)[0] != 0, "the test must allow dumps"
        run = network.run_round(PURPOSE.id)
        assert run.summary["state"] == "completed"
        expected = network.expected_results(PURPOSE.threshold, PURPOSE.id)
        for pid, part in run.summary["partners"].items():
            assert read_results(Path(part["result_path"]), network.spec.kind) == expected[pid]

        pids = network.pids
        assert set(pids) == {"p01", "p02", "coordinator"}
        assert core_limit(pids["coordinator"]) == ("0", "0")
        for partner in ("p01", "p02"):
            node = pids[partner]
            assert core_limit(node) == ("0", "0"), partner
            tree = descendants(node)
            assert tree == [], f"{partner}: child processes {[cmdline(p) for p in tree]}"


# -- W^X ------------------------------------------------------------------------------

WX_LAUNCH = (sys.executable, "-m", "tests.support.wx_launch")
TWO_PARTY = PurposeSpec(
    id="twee",
    max_set_size=100,
    mode="bilateral",
    bilateral={
        "client_partner": "p01",
        "server_partner": "p02",
        "size_only": False,
        "data_structure": "gcs",
    },
)
MAP_WX = (
    "import mmap\n"
    "try:\n"
    "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
    "    print('mapped')\n"
    "except PermissionError:\n"
    "    print('refused')\n"
)


def under_wx(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WX_LAUNCH, *argv], capture_output=True, text=True, timeout=60, check=False, cwd=REPO
    )


@pytest.fixture(scope="module")
def wx_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    """Two nodes and a coordinator, each started under the kernel's W^X rule."""
    if under_wx(sys.executable, "-c", "pass").returncode != 0:
        why = "this kernel has no PR_SET_MDWE (Linux 6.3): W^X cannot be checked here"
        if os.environ.get("KRUISPUNT_CI") == "1":
            pytest.fail(why)
        pytest.skip(why)
    spec = NetworkSpec(
        network="wx",
        partners=bench_partners(2, 40),
        overlaps={2: 10},
        purposes=(PURPOSE, TWO_PARTY),
        log_level="warning",
        launcher=WX_LAUNCH,
    )
    with LocalNetwork(tmp_path_factory.mktemp("wx"), spec) as net:
        net.build()
        net.start()
        yield net


class TestWriteXorExecute:
    """The servers, native core and openmined-psi included, run where no memory may be
    writable and executable (what the units' MemoryDenyWriteExecute=yes asks)."""

    def test_the_rule_refuses_writable_code(self) -> None:
        """The control: under the launcher a W+X mapping is refused; without it, made."""
        assert under_wx(sys.executable, "-c", MAP_WX).stdout.strip() == "refused"
        plain = subprocess.run(
            [sys.executable, "-c", MAP_WX], capture_output=True, text=True, timeout=60, check=True
        )
        assert plain.stdout.strip() == "mapped"

    def test_a_network_and_a_two_party_round_complete_under_it(
        self, wx_network: LocalNetwork
    ) -> None:
        network = wx_network.run_round(PURPOSE.id)
        assert network.summary["state"] == "completed"
        expected = wx_network.expected_results(PURPOSE.threshold, PURPOSE.id)
        for pid, part in network.summary["partners"].items():
            got = read_results(Path(part["result_path"]), wx_network.spec.kind)
            assert got == expected[pid], pid
        two_party = wx_network.run_round(TWO_PARTY.id)
        assert two_party.summary["state"] == "completed"
        client = two_party.summary["partners"]["p01"]
        assert client["flagged_count"] == len(wx_network.expected_results(2, TWO_PARTY.id)["p01"])
        for pid in wx_network.pids.values():
            assert b"wx_launch" not in cmdline(pid)  # the launcher became the server
