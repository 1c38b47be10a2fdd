"""A whole Kruispunt network in a temporary folder, built through the real set-up flow.

Coordinator init, node init (keys + CSR), partner add (certificate from the
CSR), install-cert, roster export and accept at every node, purpose add: the
same functions the CLIs call. Servers are real gRPC servers with real mTLS on
127.0.0.1, port 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from coordinator.ca_key import OFFLINE_CA_DIR, OFFLINE_CA_KEY
from coordinator.config import CoordinatorConfig, load_coordinator_config
from coordinator.provision import (
    add_partner,
    add_purpose,
    export_roster,
    init_coordinator,
    roster_path,
    update_partner_address,
)
from coordinator.server import CoordinatorServer
from coordinator.server import create_server as create_coordinator
from kruispunt.purpose import Purpose
from kruispunt.roster import Roster, load_roster
from psi_node.config import NodeConfig, load_node_config
from psi_node.provision import accept_network_roster, init_node, install_certificate
from psi_node.server import NodeServer
from psi_node.server import create_server as create_node
from tests.support.setup_files import LEGAL_BASIS, append_policies, policy_block
from tests.support.synthetic import SyntheticNetwork, make_network, write_csv

NETWORK = "testnet"


@dataclass
class TestNetwork:
    """Directories, configs and running servers of a test network."""

    __test__ = False  # a helper, not a test class

    root: Path
    coordinator_dir: Path
    partners: list[str]
    data: SyntheticNetwork | None
    node_dirs: dict[str, Path] = field(default_factory=dict)
    nodes: dict[str, NodeServer] = field(default_factory=dict)
    coordinator: CoordinatorServer | None = None
    #: The clock servers started from now on run by (None: the real one); a test moves it
    #: past a rotation's overlap and restarts the servers.
    clock: Callable[[], datetime] | None = None

    @property
    def config(self) -> CoordinatorConfig:
        return load_coordinator_config(self.coordinator_dir)

    @property
    def ca_key(self) -> Path:
        """The network CA key init wrote (ca-offline/ca.key), for --ca-key."""
        return offline_ca_key(self.config)

    def node_config(self, pid: str) -> NodeConfig:
        return load_node_config(self.node_dirs[pid], env={"KRUISPUNT_NODE_LISTEN": "127.0.0.1:0"})

    def start_node(self, pid: str, *, now: Callable[[], datetime] | None = None) -> NodeServer:
        server = create_node(
            self.node_config(pid), housekeeping_seconds=3600, now=now or self.clock
        )
        self.nodes[pid] = server
        update_partner_address(self.config, pid, f"127.0.0.1:{server.port}")
        return server

    def stop_node(self, pid: str) -> None:
        self.nodes.pop(pid).stop(grace=0)

    def start_coordinator(self, *, now: Callable[[], datetime] | None = None) -> CoordinatorServer:
        config = load_coordinator_config(
            self.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
        )
        self.coordinator = create_coordinator(config, now=now or self.clock)
        return self.coordinator

    def restart(self) -> None:
        """Stop every server and start them again (on `clock`, if it was changed)."""
        pids = list(self.nodes)
        self.close()
        for pid in pids:
            self.start_node(pid)
        self.start_coordinator()

    def publish_roster(self) -> Roster:
        """Export the roster from the registry and accept it at every node, by its digest.

        What the operators do after a partner joins or a certificate is renewed (a new
        TLS fingerprint): the coordinator writes a new version, every node accepts it.
        """
        roster, _changes = export_roster(self.config, actor="operator:test")
        path = self.coordinator_dir / "roster.toml"
        for node_dir in self.node_dirs.values():
            accept_network_roster(node_dir, path, roster.digest_hex, actor="operator:test")
        return roster

    @property
    def roster_sha256(self) -> bytes:
        """The digest of the roster the coordinator exported (and every node accepted)."""
        return load_roster(roster_path(self.config)).digest

    def add_purpose(self, purpose_id: str = "vroegsignalering", **overrides: Any) -> Purpose:
        fields: dict[str, Any] = {
            "id": purpose_id,
            "description": "Vroegsignalering van huishoudens met betalingsachterstanden",
            "identifier_kind": self.data.kind if self.data else "bsn",
            "threshold": 2,
            "disclosure": "partners",
            "result_retention_days": 28,
            "max_set_size": 100_000,
            "covenant_id": "CONV-2026-01",
            "dpia_reference": "DPIA-2026-07",
            "legal_basis": dict.fromkeys(self.partners, LEGAL_BASIS),
        }
        fields.update(overrides)
        return add_purpose(self.config, Purpose.from_dict(fields)).stored

    def run(self, purpose_id: str = "vroegsignalering", **kwargs: Any) -> Any:
        assert self.coordinator is not None
        return self.coordinator.runner.run(
            purpose_id, initiated_by="operator:test", access_point="test", **kwargs
        )

    def close(self) -> None:
        for pid in list(self.nodes):
            self.stop_node(pid)
        if self.coordinator is not None:
            self.coordinator.stop(grace=0)
            self.coordinator.store.close()
            self.coordinator = None


def offline_ca_key(config: CoordinatorConfig) -> Path:
    """Where `init` wrote the network CA key (what operators pass as --ca-key)."""
    return config.directory / OFFLINE_CA_DIR / OFFLINE_CA_KEY


def enroll_node(config: CoordinatorConfig, node_dir: Path, pid: str) -> None:
    """A partner's node in `node_dir`: init, partner add with its three files, install-cert.

    The partner is registered at a placeholder address (127.0.0.1:1) until its
    node serves; no roster is exported or accepted yet.
    """
    res = init_node(node_dir, pid, f"Organisatie {pid}")
    cert = add_partner(
        config,
        pid,
        name=f"Organisatie {pid}",
        address="127.0.0.1:1",
        csr_path=res.csr,
        signing_key_path=res.signing_public_key,
        agreement_key_path=res.agreement_public_key,
        ca_key_path=offline_ca_key(config),
    )
    install_certificate(
        node_dir,
        cert_path=cert,
        ca_path=config.tls_ca,
        coordinator_key_path=config.signing_public_key,
        partner_id=pid,
    )


def build_network(
    root: Path,
    partners: Sequence[str],
    *,
    per_partner: int = 60,
    overlaps: Mapping[Any, int] | None = None,
    seed: int = 7,
    kind: str = "bsn",
    purpose_id: str = "vroegsignalering",
    objected: Mapping[str, Sequence[int]] | None = None,
    workers: int = 1,
    bilateral_roles: Mapping[str, str] | None = None,
    legal_bases: Mapping[str, str] | None = None,
) -> TestNetwork:
    """Create the coordinator and one node per partner; nothing is started yet.

    `legal_bases` gives a partner a legal basis of its own in its policy (default
    `LEGAL_BASIS` for all); the purpose must then list the same (`add_purpose`).
    """
    data = make_network(
        partners,
        per_partner,
        overlaps if overlaps is not None else {2: 8, 3: 5, len(partners): 3},
        seed,
        kind=kind,  # type: ignore[arg-type]
    )
    net = TestNetwork(root, root / "coordinator", list(partners), data)
    init_coordinator(net.coordinator_dir, NETWORK)
    config = net.config
    for pid in partners:
        node_dir = root / "nodes" / pid
        enroll_node(config, node_dir, pid)
        input_path = node_dir / "input.csv"
        write_csv(
            input_path,
            data.rows[pid],
            kind,  # type: ignore[arg-type]
            objection_column="bezwaar",
            objected=(objected or {}).get(pid, ()),
        )
        role = (bilateral_roles or {}).get(pid)
        extra = {"mode": "bilateral", "bilateral_role": role} if role else {}
        block = policy_block(
            purpose_id,
            input_path=input_path,
            kind=kind,
            partners=partners,
            legal_basis=(legal_bases or {}).get(pid, LEGAL_BASIS),
            **extra,
        )
        append_policies(node_dir / "node.toml", [block], workers=workers)
        net.node_dirs[pid] = node_dir
    net.publish_roster()
    return net


def with_objections_and_exclusions(
    net: TestNetwork, pid: str, *, objected: range, excluded: slice
) -> TestNetwork:
    """Start a network built with `start=False` after giving `pid` objecting rows (the
    rows in `objected` say "bezwaar") and an exclusion list of its records in `excluded`;
    the purpose is added, ready for a round."""
    assert net.data is not None
    node_dir = net.node_dirs[pid]
    write_csv(
        node_dir / "input.csv",
        net.data.rows[pid],
        "bsn",
        objection_column="bezwaar",
        objected=objected,
    )
    exclusion = node_dir / "exclusions.csv"
    exclusion.write_text(
        "bsn\n" + "".join(cid.decode().split(":")[1] + "\n" for cid in net.data.ids[pid][excluded])
    )
    config = node_dir / "node.toml"
    config.write_text(
        config.read_text().replace(
            'objection_column = "bezwaar"',
            f'objection_column = "bezwaar"\nexclusion_file = "{exclusion}"',
        )
    )
    for partner in net.partners:
        net.start_node(partner)
    net.start_coordinator()
    net.add_purpose()
    return net
