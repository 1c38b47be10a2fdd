"""What both round modes share: a round in flight, its phases, and what a mode may ask of the node.

The two modes (`psi_node.modes.network`, `psi_node.modes.bilateral`) import
this module and never each other, and this module imports neither; the
`RoundManager` (`psi_node.rounds`) that runs them all is only known to the
modes through `RoundContext`. That keeps the import graph a tree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from kruispunt.errors import ProtocolError
from kruispunt.manifest import VerifiedManifest
from kruispunt.roster import Roster
from kruispunt.v1 import common_pb2
from psi_node.config import NodeConfig
from psi_node.inputs import InputSet
from psi_node.oprf import RoundKey
from psi_node.results import StagedResult, commit_results

# The phases every round passes at a node, whatever its mode: consent first, staged
# results last. Each mode adds its own in between (psi_node.modes).
CONSENTED, STAGED = "consented", "staged"


class ModeState(Protocol):
    """A mode's own state of one round; it holds the round's key, so it can be wiped."""

    def wipe(self) -> None:
        """Destroy the key material; the state is unusable afterwards."""


@dataclass(frozen=True)
class RoundMode:
    """One way to run a round after consent (Purpose.mode), as the shared code needs it.

    The calls of a mode are module functions in `psi_node.modes`, each taking
    the node (`RoundContext`) first; what the shared code asks of the mode
    itself is only what a round starts with once consented.
    """

    #: The purpose's mode this implements ("network", "bilateral").
    name: str
    #: The mode's state for a round just consented to (None: made by the mode's first call).
    start: Callable[[], ModeState | None]
    #: Adds what the mode needs to a consent before the node signs it (tag-key shares).
    on_consent: Callable[[RoundContext, NodeRound, common_pb2.Consent], None] | None = None
    #: Why the mode cannot run this manifest with a set of this size (None: it can).
    admits: Callable[[VerifiedManifest, int], str | None] | None = None


@dataclass
class NodeRound:
    """What a node keeps about one round in flight (memory only)."""

    verified: VerifiedManifest
    inputs: InputSet
    #: This node's partner id: the legal basis its audit events carry is its own.
    partner_id: str
    #: The key the round's roster names for this node: what it signs this round's
    #: consent, hop statements, commitment and payloads with (after a rotation, the
    #: previous key until the roster names the new one: `psi_node.signing_keys`).
    signing_key: Ed25519PrivateKey
    #: The roster this node's operator accepted, which the manifest names: every partner
    #: key the round uses comes from here, never from the coordinator.
    roster: Roster | None = None
    state: ModeState | None = None
    phase: str = CONSENTED
    last_activity: float = field(default_factory=time.monotonic)
    staged: StagedResult | None = None
    # How commit publishes the staged files; a bilateral server stages a metadata file only.
    publish: Callable[[StagedResult], Path] = commit_results
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def round_id(self) -> str:
        return self.verified.round_id

    @property
    def basis(self) -> str:
        """The purpose and this node's own legal basis for it, as its audit events carry."""
        purpose = self.verified.purpose
        return f"{purpose.id}: {purpose.legal_basis.get(self.partner_id, '')}"

    def wipe_state(self) -> None:
        """Wipe and forget the mode's state (its key); safe to call more than once."""
        if self.state is not None:
            self.state.wipe()
            self.state = None


def require_phase(rnd: NodeRound, phases: Iterable[str]) -> None:
    """Raise ProtocolError unless the round is in one of `phases`."""
    allowed = tuple(phases)
    if rnd.phase not in allowed:
        raise ProtocolError(f"round is in phase {rnd.phase!r}, expected {' or '.join(allowed)}")


class RoundContext(Protocol):
    """What a mode's calls use of the node; `psi_node.rounds.RoundManager` provides it."""

    config: NodeConfig
    #: Points per blinded chunk a node streams.
    chunk_points: int
    now: Callable[[], datetime]
    #: This node's X25519 key from the roster: opens the tag-key shares sealed to it.
    agreement_key: X25519PrivateKey

    def get_round(
        self,
        round_id: str,
        *,
        mode: str | None = None,
        phases: Iterable[str] | None = None,
        then: str | None = None,
    ) -> NodeRound:
        """The round in flight, checked to be of `mode` and in one of `phases` (if given),
        and moved to phase `then` (if given) at once."""
        ...

    def audit_event(
        self, event: str, rnd_or_id: NodeRound | str, action: str, **details: object
    ) -> None:
        """Append one event about a round to the node's audit log."""
        ...

    def audit_head(self) -> common_pb2.AuditHead:
        """The head of the node's audit log now, as a receipt or consent carries it."""
        ...

    def blind_chunk(self, records: Sequence[bytes], key: RoundKey) -> bytes:
        """Step 1 for one chunk of this node's records: r * HashToGroup(x), packed."""
        ...

    def evaluate_chunk(self, key: RoundKey, packed: bytes) -> tuple[bytes, bytes]:
        """Step 2 for one chunk of another partner's points: k * B, and its DLEQ proof."""
        ...
