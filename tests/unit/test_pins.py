"""psi_node.pins: the node admits only the coordinator certificate its accepted roster pins."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from kruispunt import roster as roster_mod
from kruispunt import signing
from kruispunt.pki import Identity
from kruispunt.roster import Roster, RosterPartner, render_roster
from psi_node.pins import CoordinatorPin

PINNED = bytes(range(32))


def partner(pid: str) -> RosterPartner:
    return RosterPartner(
        id=pid,
        organisation=f"Organisatie {pid}",
        signing_key=signing.public_key_bytes(signing.generate_signing_key().public_key()),
        agreement_key=roster_mod.agreement_public_bytes(roster_mod.generate_agreement_key()),
        tls_fingerprint=os.urandom(32),
    )


def accepted(state: Path, **changes: object) -> Roster:
    base = Roster(
        network="testnet",
        version=1,
        coordinator_signing_key=signing.public_key_bytes(
            signing.generate_signing_key().public_key()
        ),
        partners=(partner("gemeente"), partner("woonbron")),
        coordinator_tls_fingerprint=PINNED,
    )
    r = dataclasses.replace(base, **changes)
    state.mkdir(parents=True, exist_ok=True)
    # Replaced as `accept_roster` replaces it (atomically, a new file), never edited in place.
    staged = state / "roster.toml.new"
    staged.write_text(render_roster(r), encoding="utf-8")
    staged.chmod(0o644)
    os.replace(staged, state / "roster.toml")
    return r


COORDINATOR = Identity.coordinator("testnet")


class TestCoordinatorPin:
    def test_the_pinned_certificate_is_admitted(self, tmp_path: Path) -> None:
        """The fingerprint the roster pins passes."""
        accepted(tmp_path)
        assert CoordinatorPin(tmp_path)(COORDINATOR, PINNED.hex()) is None

    def test_another_certificate_is_refused_naming_identity_and_roster(
        self, tmp_path: Path
    ) -> None:
        """Another fingerprint is refused; the reason names the coordinator and the roster."""
        accepted(tmp_path)
        reason = CoordinatorPin(tmp_path)(COORDINATOR, "ab" * 32)
        assert reason is not None
        assert reason.startswith("kruispunt://testnet/coordinator: certificate abababab")
        assert "pinned by roster version 1 (00010203" in reason

    def test_a_newly_accepted_roster_moves_the_pin(self, tmp_path: Path) -> None:
        """After the operator accepts a roster pinning a renewed certificate, the old one is
        refused and the new one admitted, without a restart."""
        accepted(tmp_path)
        pin = CoordinatorPin(tmp_path)
        assert pin(COORDINATOR, PINNED.hex()) is None
        renewed = bytes(reversed(PINNED))
        accepted(tmp_path, version=2, coordinator_tls_fingerprint=renewed)
        assert pin(COORDINATOR, renewed.hex()) is None
        assert pin(COORDINATOR, PINNED.hex()) is not None

    def test_nothing_to_pin_leaves_it_to_the_ca(self, tmp_path: Path) -> None:
        """No roster yet, or one written before pinning: the CA decides (None)."""
        assert CoordinatorPin(tmp_path)(COORDINATOR, "ab" * 32) is None
        accepted(tmp_path, coordinator_tls_fingerprint=None)
        assert CoordinatorPin(tmp_path)(COORDINATOR, "ab" * 32) is None

    def test_other_roles_are_left_to_the_role_rules(self, tmp_path: Path) -> None:
        """A partner or operator is not the pin's to judge (the interceptor's rules refuse it)."""
        accepted(tmp_path)
        assert CoordinatorPin(tmp_path)(Identity.partner("testnet", "gemeente"), "ab" * 32) is None
