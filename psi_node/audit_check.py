"""`psi-node audit verify-network`: a partner checks the coordinator's log with public data only.

Reads this node's own log (in the node directory), the coordinator's full export
and its audit public key, and any other node's export; each other node's key comes
from the roster this node accepted (the covenant's), never from the coordinator.
The checks themselves are `kruispunt.audit.witness.verify_network`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kruispunt import signing
from kruispunt.audit import AuditEvent, load_csv, load_jsonl
from kruispunt.audit.witness import NodeLog, WitnessReport, verify_network
from kruispunt.errors import ConfigError
from kruispunt.roster import Roster, load_accepted_roster
from psi_node.audit import events_of_file
from psi_node.config import NodeConfig

__all__ = ["load_export", "load_public_key_file", "verify_network_files"]


def load_export(path: Path) -> list[AuditEvent]:
    """Read an audit export (JSON Lines, or CSV by its .csv name); ConfigError names the line."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            return load_csv(fh) if path.suffix.lower() == ".csv" else load_jsonl(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: export not found") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def load_public_key_file(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key file (PEM, as `init` writes them); ConfigError with the reason."""
    try:
        return signing.load_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: public key file not found") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def verify_network_files(
    config: NodeConfig,
    *,
    coordinator_export: Path,
    coordinator_key: Path,
    node_exports: Sequence[Path] = (),
) -> WitnessReport:
    """Verify the coordinator's export, this node's log and other nodes' exports together.

    ConfigError if a file cannot be read, or another node's export is not of a
    partner on the accepted roster (its key comes from there).
    """
    roster = load_accepted_roster(config.state_dir)
    own_key = _own_key(config)
    nodes = [
        NodeLog(
            config.partner_id,
            events_of_file(config.audit_log),
            own_key,
            f"node {config.partner_id} (own log)",
        )
    ]
    for path in node_exports:
        events = load_export(path)
        partner = _partner_of(path, events)
        if partner == config.partner_id or partner in {n.partner for n in nodes}:
            raise ConfigError(f"{path}: a second log of partner {partner!r}")
        nodes.append(
            NodeLog(partner, events, _roster_key(roster, partner, path), f"node {partner}")
        )
    return verify_network(
        load_export(coordinator_export), load_public_key_file(coordinator_key), nodes
    )


def _own_key(config: NodeConfig) -> Ed25519PublicKey:
    public = config.signing_key.with_suffix(".pub")
    if public.exists():
        return load_public_key_file(public)
    return signing.load_signing_key(config.signing_key).public_key()


def _partner_of(path: Path, events: Sequence[AuditEvent]) -> str:
    """The partner whose log this is: every event is on its behalf."""
    partners = {e.on_behalf_of for e in events}
    if len(partners) != 1:
        raise ConfigError(
            f"{path}: not one node's audit log (events on behalf of "
            f"{', '.join(sorted(partners)) or 'nobody'})"
        )
    (partner,) = partners
    return partner


def _roster_key(roster: Roster | None, partner: str, path: Path) -> tuple[Ed25519PublicKey, ...]:
    if roster is None:
        raise ConfigError(
            f"{path}: this node accepted no roster, so it has no key for {partner!r}'s log"
        )
    try:
        # Both keys of a rotation: the log's handover says which signed which part.
        return roster.partner(partner).every_signing_key
    except ConfigError:
        raise ConfigError(
            f"{path}: partner {partner!r} is not on the roster this node accepted"
        ) from None
