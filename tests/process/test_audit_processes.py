"""Two processes appending to one audit log at once (a server and its CLI) keep one chain."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.audit import CoordinatorAudit, verify_database
from kruispunt import signing
from psi_node.audit import NodeAudit
from tests.support.paths import REPO

# argv: log path, private key (hex), go-file, actor, count. {cls} and {module} name the log.
APPENDER = """
import sys, time
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from {module} import {cls}

path, key_hex, go, actor, count = sys.argv[1:]
log = {cls}(Path(path), Ed25519PrivateKey.from_private_bytes(bytes.fromhex(key_hex)))
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.002)
for i in range(int(count)):
    log.append("operator.action", actor=actor, on_behalf_of="{on_behalf_of}", access_point="proc",
               action="E", details={{"i": i}})
log.close()
"""


def run_appenders(
    tmp_path: Path,
    log_path: Path,
    key: Ed25519PrivateKey,
    source: str,
    *,
    processes: int,
    each: int,
) -> None:
    """Start `processes` appenders running `source`, release them together, wait for all."""
    key_hex = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    ).hex()
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", source, str(log_path), key_hex, str(go), f"proc{n}", str(each)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(processes)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    go.touch()
    for proc in procs:
        assert proc.wait(timeout=60) == 0


class TestCoordinatorAudit:
    def test_two_processes_keep_one_chain(self, tmp_path: Path) -> None:
        """A server and a CLI process appending at once never fork the chain."""
        db, key = tmp_path / "coordinator.sqlite", signing.generate_signing_key()
        fill_in_parent = CoordinatorAudit(db, key)  # the table exists before they race
        source = APPENDER.format(
            module="coordinator.audit", cls="CoordinatorAudit", on_behalf_of="net"
        )
        run_appenders(tmp_path, db, key, source, processes=2, each=40)
        with CoordinatorAudit(db, key) as log:
            events = log.events()
        fill_in_parent.close()
        assert [e.seq for e in events] == list(range(1, 81))
        assert {e.actor for e in events} == {"proc0", "proc1"}
        assert verify_database(db, key.public_key()).ok


class TestNodeAudit:
    def test_two_processes_keep_one_chain(self, tmp_path: Path) -> None:
        """The node server and its CLI appending to one file at once never fork the chain."""
        path, key = tmp_path / "audit" / "node-audit.jsonl", signing.generate_signing_key()
        source = APPENDER.format(module="psi_node.audit", cls="NodeAudit", on_behalf_of="p")
        run_appenders(tmp_path, path, key, source, processes=2, each=40)
        with NodeAudit(path, key) as log:
            events = log.events()
            assert [e.seq for e in events] == list(range(1, 81))
            assert {e.actor for e in events} == {"proc0", "proc1"}
            assert log.verify().ok
