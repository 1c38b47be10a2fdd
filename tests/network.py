"""A whole Kruispunt network in a temporary folder, built through the real set-up flow.

Coordinator init, node init (keys + CSR), partner add (certificate from the
CSR), install-cert, purpose add: the same functions the CLIs call. Servers
are real gRPC servers with real mTLS on 127.0.0.1, port 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.config import CoordinatorConfig, load_coordinator_config
from coordinator.server import CoordinatorServer
from coordinator.server import create_server as create_coordinator
from coordinator.setup import add_partner, add_purpose, init_coordinator, update_partner_address
from kruispunt.purpose import Purpose
from kruispunt.synthetic import SyntheticNetwork, make_network, write_csv
from psi_node.config import NodeConfig, load_node_config
from psi_node.pool import PointPool
from psi_node.server import NodeServer
from psi_node.server import create_server as create_node
from psi_node.setup import init_node, install_certificate

NETWORK = "testnet"
LEGAL_BASIS = "AVG art. 6(1)(e); Wgs art. 3a"


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
    pool: PointPool | None = None

    @property
    def config(self) -> CoordinatorConfig:
        return load_coordinator_config(self.coordinator_dir)

    def node_config(self, pid: str) -> NodeConfig:
        return load_node_config(self.node_dirs[pid], env={"KRUISPUNT_NODE_LISTEN": "127.0.0.1:0"})

    def start_node(self, pid: str) -> NodeServer:
        server = create_node(self.node_config(pid), pool=self.pool, housekeeping_seconds=3600)
        self.nodes[pid] = server
        update_partner_address(self.config, pid, f"127.0.0.1:{server.port}")
        return server

    def stop_node(self, pid: str) -> None:
        self.nodes.pop(pid).stop(grace=0)

    def start_coordinator(self) -> CoordinatorServer:
        config = load_coordinator_config(
            self.coordinator_dir, env={"KRUISPUNT_COORDINATOR_LISTEN": "127.0.0.1:0"}
        )
        self.coordinator = create_coordinator(config)
        return self.coordinator

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
        return add_purpose(self.config, Purpose.from_dict(fields))

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


def policy_block(
    purpose_id: str, partners: Sequence[str], input_path: Path, kind: str, **policy: Any
) -> str:
    """node.toml sections for one purpose: where its input is and what the node agreed to."""
    lines = [
        f"[inputs.{purpose_id}]",
        f'path = "{input_path}"',
        f'kind = "{kind}"',
        'objection_column = "bezwaar"',
        "",
        f"[policy.{purpose_id}]",
        f'legal_basis = "{policy.pop("legal_basis", LEGAL_BASIS)}"',
        "partners = [" + ", ".join(f'"{p}"' for p in partners) + "]",
        f'max_disclosure = "{policy.pop("max_disclosure", "partners")}"',
        f"max_set_size = {policy.pop('max_set_size', 1_000_000)}",
        # Tests run rounds back to back; the default interval (a day) is tested on its own.
        f"min_round_interval_hours = {policy.pop('min_round_interval_hours', 0)}",
    ]
    lines += [f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in policy.items()]
    return "\n".join(lines).replace("'", '"') + "\n"


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
) -> TestNetwork:
    """Create the coordinator and one node per partner; nothing is started yet."""
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
        res = init_node(node_dir, pid, f"Organisatie {pid}")
        cert = add_partner(
            config,
            pid,
            name=f"Organisatie {pid}",
            address="127.0.0.1:1",
            csr_path=res.csr,
            signing_key_path=res.signing_public_key,
        )
        install_certificate(
            node_dir,
            cert_path=cert,
            ca_path=config.tls_ca,
            coordinator_key_path=config.signing_public_key,
            partner_id=pid,
        )
        input_path = node_dir / "input.csv"
        write_csv(
            input_path,
            data.rows[pid],
            kind,  # type: ignore[arg-type]
            objection_column="bezwaar",
            objected=(objected or {}).get(pid, ()),
        )
        with open(node_dir / "node.toml", "a", encoding="utf-8") as fh:
            role = (bilateral_roles or {}).get(pid)
            extra = {"mode": "bilateral", "bilateral_role": role} if role else {}
            fh.write("\n" + policy_block(purpose_id, partners, input_path, kind, **extra))
        text = (node_dir / "node.toml").read_text()
        (node_dir / "node.toml").write_text(
            text.replace("# workers = 2 ", f"workers = {workers} ", 1)
        )
        net.node_dirs[pid] = node_dir
    return net
