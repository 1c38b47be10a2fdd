"""Config as a partner's IT team meets it, through the installed scripts in processes of their
own: doctor's suggested command runs as printed, and a serving node and coordinator take up
edits without a restart (for every manifest, and on SIGHUP)."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.netlab import LocalNetwork, NetworkSpec, PartnerSpec, PurposeSpec
from tests.support.network import TestNetwork

BIN = Path(sys.executable).parent
PURPOSE = "vroegsignalering"


def run(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """An installed console script (argv[0] "psi-node" or "psi-coordinator"), as typed."""
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


def doctor_checks(*argv: str) -> dict[str, dict[str, Any]]:
    """`doctor ... --json` in a process: each check by name."""
    done = run(*argv, "--json")
    report = json.loads(done.stdout)
    return {c["name"]: c for c in report["checks"]}


class TestDoctorCommandsWorkAsPrinted:
    def test_doctor_check_input_command_runs_and_applies_the_fix(
        self, network_factory: Callable[..., TestNetwork]
    ) -> None:
        """Doctor names an unread Toev and prints a check-input command; run as printed, it
        reads node.toml and says the same; with the fix written into node.toml both pass."""
        net = network_factory(
            ["gemeente", "woonbron"], start=False, kind="address", overlaps={2: 3}
        )
        node_dir = net.node_dirs["gemeente"]
        (node_dir / "input.csv").write_text(
            "postcode;huisnummer;huisletter;Toev;bezwaar\n1234AB;12;;2;\n1234AB;12;;;\n",
            encoding="utf-8",
        )
        checks = doctor_checks("psi-node", "doctor", str(node_dir), "--offline")
        detail = checks[f"input {PURPOSE}"]["detail"]
        assert checks[f"input {PURPOSE}"]["status"] == "fail"
        assert "--columns toevoeging=Toev" in detail
        printed = re.search(r"psi-node check-input \S+ --purpose \S+", detail)
        assert printed is not None, detail
        done = run(*shlex.split(printed[0]))
        assert done.returncode == 2
        assert "column 4 'Toev' looks like the toevoeging" in done.stderr
        (retry,) = [x for x in done.stderr.splitlines() if x.startswith("try: ")]
        fixed = run(*shlex.split(retry.removeprefix("try: ")))
        assert fixed.returncode == 0, fixed.stderr
        assert "toevoeging <- 'Toev'" in fixed.stdout
        assert "  valid               2\n" in fixed.stdout

        # The fix as the message spells it for node.toml.
        config = node_dir / "node.toml"
        text = config.read_text(encoding="utf-8")
        marker = 'objection_column = "bezwaar"\n'
        config.write_text(text.replace(marker, marker + 'columns = { toevoeging = "Toev" }\n'))
        checks = doctor_checks("psi-node", "doctor", str(node_dir), "--offline")
        assert checks[f"input {PURPOSE}"]["status"] == "ok"
        assert "toevoeging <- 'Toev'" in checks[f"input {PURPOSE}"]["detail"]
        again = run(*shlex.split(printed[0]))
        assert again.returncode == 0, again.stderr
        assert "  valid               2\n" in again.stdout

    def test_relative_directory_as_typed(self, network_factory: Callable[..., TestNetwork]) -> None:
        """Doctor run with a relative DIR prints a command that works from the same folder."""
        net = network_factory(["gemeente", "woonbron"], start=False, overlaps={2: 3})
        node_dir = net.node_dirs["gemeente"]
        (node_dir / "input.csv").write_text("bsn;bezwaar\n123456789;\n", encoding="utf-8")
        done = run("psi-node", "doctor", node_dir.name, "--offline", "--json", cwd=node_dir.parent)
        checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
        detail = checks[f"input {PURPOSE}"]["detail"]
        printed = re.search(r"psi-node check-input \S+ --purpose \S+", detail)
        assert printed is not None, detail
        assert printed[0] == f"psi-node check-input gemeente --purpose {PURPOSE}"
        listed = run(*shlex.split(printed[0]), cwd=node_dir.parent)
        assert listed.returncode == 2  # no valid rows, as doctor said
        assert "line 2: bsn: elfproef fails" in listed.stdout


SPEC = NetworkSpec(
    partners=(
        PartnerSpec("p01", "Partner 1 (synthetic)", 300),
        PartnerSpec("p02", "Partner 2 (synthetic)", 300),
        PartnerSpec("p03", "Partner 3 (synthetic)", 300),
    ),
    overlaps={2: 30, 3: 10},
    purposes=(PurposeSpec(id=PURPOSE, max_set_size=10_000),),
)
POLICY = f"\n[policy.{PURPOSE}]\n"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    with LocalNetwork(tmp_path_factory.mktemp("reload"), SPEC) as net:
        net.build()
        net.start()
        yield net


def set_min_threshold(node_dir: Path, value: int | None) -> None:
    """Write (or, with None, remove) a min_threshold line under the purpose's policy table."""
    config = node_dir / "node.toml"
    text = re.sub(r"\nmin_threshold = \d+\n", "\n", config.read_text(encoding="utf-8"))
    assert POLICY in text
    if value is not None:
        text = text.replace(POLICY, POLICY + f"min_threshold = {value}\n")
    config.write_text(text, encoding="utf-8")


def running_config(*argv: str) -> dict[str, Any]:
    return doctor_checks(*argv)["running config"]


class TestServingProcessesTakeUpEdits:
    def test_min_threshold_on_a_running_node_process_refuses_the_next_round(
        self, network: LocalNetwork
    ) -> None:
        """min_threshold = 3 written into a serving node's node.toml: doctor says the server
        has not read it yet, the next threshold-2 round is refused by that node (the same
        process, never restarted), and doctor then finds the server up to date."""
        node_dir = network.node_dir("p01")
        pid = network.pids["p01"]
        first = network.run_round(PURPOSE)
        assert first.summary["state"] == "completed"
        set_min_threshold(node_dir, 3)
        try:
            check = running_config("psi-node", "doctor", str(node_dir), "--offline")
            assert check["status"] == "warn"
            assert f"kill -HUP {pid}" in check["detail"]
            outcome = network.start_round(PURPOSE).wait(timeout=120)
            assert outcome.state == "refused", outcome.summary
            assert "threshold 2 is below this node's minimum 3" in outcome.reason
            assert network.pids["p01"] == pid
            assert (
                running_config("psi-node", "doctor", str(node_dir), "--offline")["status"] == "ok"
            )
        finally:
            set_min_threshold(node_dir, 2)

    def test_sighup_reads_node_toml_now_and_rounds_run_again(self, network: LocalNetwork) -> None:
        """An edit and SIGHUP (systemctl reload): doctor is satisfied before any round runs,
        and the round after it completes."""
        node_dir = network.node_dir("p01")
        set_min_threshold(node_dir, None)
        assert running_config("psi-node", "doctor", str(node_dir), "--offline")["status"] == "warn"
        network.signal("p01", signal.SIGHUP)
        deadline = time.monotonic() + 20
        while running_config("psi-node", "doctor", str(node_dir), "--offline")["status"] != "ok":
            assert time.monotonic() < deadline, "SIGHUP did not make the node read node.toml"
            time.sleep(0.2)
        assert network.run_round(PURPOSE).summary["state"] == "completed"

    def test_sighup_makes_the_coordinator_follow_its_new_schedule(
        self, network: LocalNetwork
    ) -> None:
        """A [[schedule]] added while serving: doctor says it is not followed yet; after SIGHUP
        the serving coordinator runs it (the same process) and doctor agrees."""
        directory = network.coordinator_dir
        pid = network.pids["coordinator"]
        config = directory / "coordinator.toml"
        before = config.read_text(encoding="utf-8")
        config.write_text(before + f'\n[[schedule]]\npurpose = "{PURPOSE}"\ncron = "0 6 * * 1"\n')
        try:
            argv = ("psi-coordinator", "doctor", str(directory))
            check = running_config(*argv)
            assert check["status"] == "warn"
            assert "systemctl reload psi-coordinator" in check["detail"]
            network.signal("coordinator", signal.SIGHUP)
            deadline = time.monotonic() + 20
            while running_config(*argv)["status"] != "ok":
                assert time.monotonic() < deadline, "SIGHUP did not reload the schedule"
                time.sleep(0.2)
            assert network.pids["coordinator"] == pid
            log = (directory / "coordinator.log").read_text(encoding="utf-8", errors="replace")
            assert "schedule reloaded" in log
            assert f"{PURPOSE} @ 0 6 * * 1" in log
        finally:
            config.write_text(before, encoding="utf-8")
