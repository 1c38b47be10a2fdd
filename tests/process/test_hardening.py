"""Real server processes write no core dumps: `psi-node serve`, its pool, `psi-coordinator serve`.

A network of two nodes and a coordinator (`tests/support/netlab.py`), each its own process
started through the console scripts as systemd would start it, minus the unit's LimitCORE=0:
so a core limit of 0 here is the servers' own doing (`kruispunt.hardening`). The test
starts them with a core limit that allows dumps, to see that the servers lower it.
That the pool workers also clear their dumpable flag is checked in
tests/unit/test_hardening.py (as root, no reader can see the flag from outside).
"""

from __future__ import annotations

import re
import resource
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
