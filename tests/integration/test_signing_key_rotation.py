"""Rotating a partner's signing key and the coordinator's manifest key, with an overlap window.

Real servers over real mTLS. A node rotates through its CLI (`psi-node rotate-signing-key`)
and rounds go on, signed with the key its roster names; the coordinator registers the new
key (`psi-coordinator partner rotate-key`), every node accepts the roster that lists both
keys, and the next round's consent is signed with the new key. The node's audit log,
spanning the handover, verifies with `psi-node audit verify` and `audit verify-network`.
The attacks: the old key used after the overlap (the thief of a leaked key), by a partner
and by the coordinator; within the overlap, the old key still verifies.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator import cli as coordinator_cli
from coordinator.provision import roster_path
from coordinator.report.gather import VERIFIED, build_report
from kruispunt import signing
from kruispunt.errors import SignatureInvalid
from kruispunt.logs import configure_logging
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.roster import load_accepted_roster, load_roster
from kruispunt.v1 import common_pb2
from psi_node import cli as node_cli
from psi_node.provision import accept_network_roster
from tests.support.mallory import Mallory, audited, parse_consent

PARTNERS = ["gemeente", "woonbron", "zorgpunt"]
ROTATING = "woonbron"
OVERLAP_DAYS = 7


def later(days: float) -> Callable[[], datetime]:
    """A clock `days` ahead of the real one."""
    return lambda: datetime.now(UTC) + timedelta(days=days)


def accept_everywhere(net: Any) -> None:
    """Every node's operator accepts the roster the coordinator exported, by its digest."""
    roster = load_roster(roster_path(net.config))
    for node_dir in net.node_dirs.values():
        accept_network_roster(node_dir, roster_path(net.config), roster.digest_hex)


def consent_of(net: Any, round_id: str, pid: str) -> common_pb2.SignedConsent:
    """The signed consent the coordinator stored for `pid` in `round_id`."""
    for partner, _granted, _reason, body, signature in net.coordinator.store.consents(round_id):
        if partner == pid:
            return common_pb2.SignedConsent(consent=body, signature=signature)
    raise AssertionError(f"no consent of {pid} in {round_id}")


def signed_by(consent: common_pb2.SignedConsent, key: Ed25519PrivateKey) -> bool:
    """Whether `key` made the consent's signature."""
    try:
        signing.verify(
            key.public_key(), signing.CONTEXT_CONSENT, consent.consent, consent.signature
        )
    except SignatureInvalid:
        return False
    return True


def cli(main: Callable[[list[str]], int], argv: list[str], capsys: Any) -> dict[str, Any]:
    """Run a CLI in process with --json; its answer, after checking it exited 0."""
    capsys.readouterr()
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    # The CLI logs to the captured stderr, which pytest closes after the fixture phase:
    # the servers log on into a buffer, as before the CLI ran.
    configure_logging(json=True, level="debug", stream=io.StringIO())
    assert code == 0, err
    return dict(json.loads(out))


def register_rotation(net: Any, public_key: str, capsys: Any) -> dict[str, Any]:
    """`partner rotate-key` at the coordinator: ROTATING's new key, OVERLAP_DAYS of overlap."""
    return cli(
        coordinator_cli.main,
        [
            "partner",
            "rotate-key",
            str(net.coordinator_dir),
            ROTATING,
            "--signing-key",
            public_key,
            "--overlap-days",
            str(OVERLAP_DAYS),
            "--reason",
            "yearly",
        ],
        capsys,
    )


@pytest.fixture
def rotated(network_factory: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A round; woonbron rotates; a round on the old roster; the key registered and accepted."""
    net = network_factory(PARTNERS, per_partner=12, overlaps={2: 3, 3: 2})
    net.add_purpose()
    first = net.run()
    assert first.state == "completed", first.reason
    config = net.node_config(ROTATING)
    old_key = signing.load_signing_key(config.signing_key)
    monkeypatch.setenv("SUDO_USER", "alice")
    node_answer = cli(
        node_cli.main,
        ["rotate-signing-key", str(net.node_dirs[ROTATING]), "--reason", "yearly"],
        capsys,
    )
    new_key = signing.load_signing_key(config.signing_key)
    # Not registered yet: the serving node signs with the key its roster still names.
    between = net.run()
    assert between.state == "completed", between.reason
    assert signed_by(consent_of(net, between.round_id, ROTATING), old_key)
    coordinator_answer = register_rotation(net, node_answer["public_key"], capsys)
    accept_everywhere(net)
    return net, old_key, new_key, node_answer, coordinator_answer


class TestPartnerKeyRotation:
    def test_the_roster_lists_both_keys_until_the_overlap_ends(self, rotated: Any) -> None:
        """The exported roster names the new key, the old one and the end of the overlap."""
        net, old_key, new_key, _node, answer = rotated
        entry = load_roster(roster_path(net.config)).partner(ROTATING)
        assert entry.signing_key == signing.public_key_bytes(new_key.public_key())
        assert entry.previous_signing_key == signing.public_key_bytes(old_key.public_key())
        until = entry.previous_signing_key_valid_until
        assert until is not None
        assert timedelta(days=OVERLAP_DAYS - 1) < until - datetime.now(UTC)
        assert until - datetime.now(UTC) <= timedelta(days=OVERLAP_DAYS)
        assert answer["valid_until"] == until.isoformat()
        assert answer["roster"]["version"] == load_roster(roster_path(net.config)).version

    def test_a_round_in_the_overlap_runs_with_the_new_key(self, rotated: Any) -> None:
        """The next round completes, and the rotated node's consent is signed by the new key."""
        net, old_key, new_key, _node, _answer = rotated
        summary = net.run()
        assert summary.state == "completed", summary.reason
        consent = consent_of(net, summary.round_id, ROTATING)
        assert signed_by(consent, new_key)
        assert not signed_by(consent, old_key)

    def test_the_rotation_is_audited_on_both_sides(self, rotated: Any) -> None:
        """The node's handover names both keys; the coordinator audits who registered which."""
        net, old_key, new_key, node_answer, _answer = rotated
        (handover,) = audited(net, ROTATING, "audit.key_rotated")
        assert handover["previous_key_id"] == signing.key_id(old_key.public_key())
        assert handover["new_key_id"] == signing.key_id(new_key.public_key())
        assert handover["reason"] == "yearly"
        assert node_answer["handover_seq"] > 1
        (event,) = [e for e in net.coordinator.audit.events() if e.event == "partner.key_rotated"]
        assert event.actor.endswith("alice")
        assert event.details["partner"] == ROTATING
        assert event.details["new_key_id"] == signing.key_id(new_key.public_key())
        assert event.details["previous_key_id"] == signing.key_id(old_key.public_key())

    def test_the_node_log_spanning_the_rotation_verifies(
        self, rotated: Any, capsys: Any, tmp_path: Path
    ) -> None:
        """`psi-node audit verify` and `verify-network` (the rotated node's export checked
        with roster keys at another node) pass over events before and after the handover."""
        net, *_ = rotated
        summary = net.run()
        assert summary.state == "completed", summary.reason
        verified = cli(node_cli.main, ["audit", "verify", str(net.node_dirs[ROTATING])], capsys)
        assert verified["ok"] is True
        coordinator_export = tmp_path / "coordinator.jsonl"
        assert (
            coordinator_cli.main(
                ["audit", "export", str(net.coordinator_dir), "--out", str(coordinator_export)]
            )
            == 0
        )
        node_export = tmp_path / "woonbron.jsonl"
        capsys.readouterr()
        assert node_cli.main(["audit", "export", str(net.node_dirs[ROTATING])]) == 0
        node_export.write_text(capsys.readouterr().out, encoding="utf-8")
        for officer in ("gemeente", ROTATING):
            extra = ["--node-export", str(node_export)] if officer != ROTATING else []
            report = cli(
                node_cli.main,
                [
                    "audit",
                    "verify-network",
                    str(net.node_dirs[officer]),
                    "--coordinator-export",
                    str(coordinator_export),
                    "--coordinator-key",
                    str(net.config.audit_public_key),
                    *extra,
                ],
                capsys,
            )
            assert report["ok"] is True, report

    def test_the_report_verifies_consents_from_before_and_after_the_rotation(
        self, rotated: Any
    ) -> None:
        """A round report long after: the old-key consent of the round between still verifies
        (it was signed then, by the key then registered), and so does a new-key one."""
        net, old_key, new_key, _node, _answer = rotated
        after = net.run()
        assert after.state == "completed", after.reason
        rounds = [r.id for r in net.coordinator.store.rounds(limit=10)]
        key = signing.load_public_key(net.config.signing_public_key.read_bytes())
        for round_id in rounds:
            report = build_report(net.config, round_id, key, now=later(OVERLAP_DAYS + 30)())
            checks = {c.partner_id: c.status for c in report.consents}
            assert report.consents_ok, (round_id, checks)
            assert checks[ROTATING] == VERIFIED, (round_id, checks)
        signers = {
            round_id: signed_by(consent_of(net, round_id, ROTATING), old_key) for round_id in rounds
        }
        assert sorted(signers.values()) == [False, True, True]  # first, between: old key
        assert signed_by(consent_of(net, after.round_id, ROTATING), new_key)

    def test_the_report_verifies_consents_two_rotations_back(
        self, rotated: Any, capsys: Any
    ) -> None:
        """After a second rotation the report of the round signed with the first key still
        verifies: every key a partner signed with stays on record, not only the last one
        replaced."""
        net, old_key, _new_key, _node, _answer = rotated
        between = [
            r.id
            for r in net.coordinator.store.rounds(limit=10)
            if signed_by(consent_of(net, r.id, ROTATING), old_key)
        ]
        assert len(between) == 2  # the first round and the one between
        again = cli(node_cli.main, ["rotate-signing-key", str(net.node_dirs[ROTATING])], capsys)
        register_rotation(net, again["public_key"], capsys)
        accept_everywhere(net)
        key = signing.load_public_key(net.config.signing_public_key.read_bytes())
        for round_id in between:
            report = build_report(net.config, round_id, key, now=later(2 * OVERLAP_DAYS + 30)())
            checks = {c.partner_id: c.status for c in report.consents}
            assert checks[ROTATING] == VERIFIED, (round_id, checks)

    def test_a_second_rotation_waits_for_the_first_in_the_roster(
        self, network_factory: Any, capsys: Any
    ) -> None:
        """Rotating again before the roster names the new key is refused: the key the
        roster still names would be lost."""
        net = network_factory(PARTNERS[:2], per_partner=8, overlaps={2: 2}, start=False)
        node_dir = str(net.node_dirs[ROTATING])
        cli(node_cli.main, ["rotate-signing-key", node_dir], capsys)
        assert node_cli.main(["rotate-signing-key", node_dir]) == 1
        assert "does not name this node's current key" in capsys.readouterr().err


class TestOldPartnerKeyAfterTheOverlap:
    """The thief of the old key answers as the node: accepted in the overlap, never after."""

    @staticmethod
    def sign_with(net: Any, pid: str, key: Ed25519PrivateKey, monkeypatch: Any) -> None:
        # Whoever holds the leaked key answers in this node's place.
        monkeypatch.setattr(net.nodes[pid].rounds, "round_signing_key", lambda roster: key)

    def test_the_old_key_is_refused_after_the_overlap(
        self, rotated: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past the end of the overlap a consent signed with the old key fails the round,
        naming the partner; the roster in force still lists the old key."""
        net, old_key, _new_key, _node, _answer = rotated
        net.clock = later(OVERLAP_DAYS + 1)
        net.restart()
        self.sign_with(net, ROTATING, old_key, monkeypatch)
        summary = net.run()
        assert summary.state == "failed"
        assert f"{ROTATING}: consent does not verify" in summary.reason

    def test_the_old_key_still_verifies_within_the_overlap(
        self, rotated: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Before the end of the overlap the same old-key consent, hops and commitment
        verify at the coordinator and at every node: the round completes."""
        net, old_key, _new_key, _node, _answer = rotated
        net.clock = later(OVERLAP_DAYS - 1)
        net.restart()
        self.sign_with(net, ROTATING, old_key, monkeypatch)
        summary = net.run()
        assert summary.state == "completed", summary.reason
        assert signed_by(consent_of(net, summary.round_id, ROTATING), old_key)

    def test_after_the_overlap_the_new_key_still_runs(self, rotated: Any) -> None:
        """Past the overlap the node, signing with its new key, takes part as before."""
        net, _old_key, new_key, _node, _answer = rotated
        net.clock = later(OVERLAP_DAYS + 1)
        net.restart()
        summary = net.run()
        assert summary.state == "completed", summary.reason
        assert signed_by(consent_of(net, summary.round_id, ROTATING), new_key)

    def test_an_export_after_the_overlap_drops_the_old_key(self, rotated: Any) -> None:
        """The roster exported after the overlap no longer lists the previous key."""
        from coordinator.provision import export_roster

        net, *_ = rotated
        roster, changes = export_roster(
            net.config, now=datetime.now(UTC) + timedelta(days=OVERLAP_DAYS + 1)
        )
        assert roster.partner(ROTATING).previous_signing_key is None
        assert any("rotation overlap" in change for change in changes)


def forged_manifest(net: Any, key: Ed25519PrivateKey, now: datetime) -> common_pb2.SignedManifest:
    """A manifest for the current roster, signed with `key` at `now`."""
    purpose = net.coordinator.store.purpose("vroegsignalering")
    return sign_manifest(
        key,
        round_id=new_round_id(now),
        network=net.config.network,
        purpose=purpose,
        partners=list(purpose.partners),
        now=now,
        ttl_seconds=600,
        initiated_by="operator:mallory",
        roster_sha256=load_roster(roster_path(net.config)).digest,
    )


@pytest.fixture
def manifest_rotated(network_factory: Any, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A round, the manifest key rotated through the CLI, the roster accepted everywhere."""
    net = network_factory(PARTNERS[:2], per_partner=12, overlaps={2: 3})
    net.add_purpose()
    assert net.run().state == "completed"
    old_key = signing.load_signing_key(net.config.signing_key)
    monkeypatch.setenv("SUDO_USER", "alice")
    answer = cli(
        coordinator_cli.main,
        [
            "rotate-signing-key",
            str(net.coordinator_dir),
            "--overlap-days",
            str(OVERLAP_DAYS),
            "--reason",
            "yearly",
        ],
        capsys,
    )
    accept_everywhere(net)
    return net, old_key, answer


class TestManifestKeyRotation:
    def test_rounds_run_with_the_new_manifest_key(self, manifest_rotated: Any) -> None:
        """The serving coordinator signs the next manifest with the new key; the nodes, on
        the roster that names both, consent; their installed coordinator key moved on."""
        net, old_key, answer = manifest_rotated
        new_key = signing.load_signing_key(net.config.signing_key)
        assert signing.key_id(new_key.public_key()) == answer["new_key_id"]
        roster = load_roster(roster_path(net.config))
        assert roster.coordinator_signing_key == signing.public_key_bytes(new_key.public_key())
        assert roster.coordinator_previous_signing_key == signing.public_key_bytes(
            old_key.public_key()
        )
        summary = net.run()
        assert summary.state == "completed", summary.reason
        for pid in net.partners:
            installed = signing.read_public_key(net.node_config(pid).coordinator_public_key)
            assert installed == new_key.public_key()
            accepted = load_accepted_roster(net.node_config(pid).state_dir)
            assert accepted is not None
            assert accepted.digest == roster.digest
        assert Path(answer["retired_public_key"]).exists()
        (event,) = [e for e in net.coordinator.audit.events() if e.event == "signing.key_rotated"]
        assert event.details["previous_key_id"] == signing.key_id(old_key.public_key())

    def test_an_old_key_manifest_is_refused_after_the_overlap(self, manifest_rotated: Any) -> None:
        """A manifest signed with the retired key past the overlap is refused by the node
        (a stolen old manifest key proposes nothing); inside the overlap it is accepted."""
        net, old_key, _answer = manifest_rotated
        mallory = Mallory(net)
        try:
            inside = parse_consent(
                mallory.stub("gemeente").Propose(
                    forged_manifest(net, old_key, datetime.now(UTC)), timeout=10
                )
            )
            assert inside.granted, inside.reason
        finally:
            mallory.close()
        net.clock = later(OVERLAP_DAYS + 1)
        net.restart()
        mallory = Mallory(net)
        try:
            after = parse_consent(
                mallory.stub("gemeente").Propose(
                    forged_manifest(net, old_key, net.clock()), timeout=10
                )
            )
        finally:
            mallory.close()
        assert not after.granted
        assert after.reason == "manifest signature does not verify"

    def test_a_roster_not_exported_after_rotation_stops_rounds(self, network_factory: Any) -> None:
        """A coordinator whose roster names the old manifest key starts no round (nodes
        would refuse every manifest): the operator hears to export the roster."""
        from coordinator.key_rotation import rotate_manifest_key
        from kruispunt.errors import ConfigError

        net = network_factory(PARTNERS[:2], per_partner=8, overlaps={2: 2})
        net.add_purpose()
        rotate_manifest_key(net.config, actor="operator:test")
        with pytest.raises(ConfigError, match="roster export"):
            net.run()


class TestPartnerRotateKeyRefusals:
    def test_the_current_key_again_is_refused(self, network_factory: Any, capsys: Any) -> None:
        """Registering the key the partner already has names the file and the fix."""
        net = network_factory(PARTNERS[:2], per_partner=8, overlaps={2: 2}, start=False)
        current = net.node_dirs[ROTATING] / "signing" / "node.pub"
        code = coordinator_cli.main(
            [
                "partner",
                "rotate-key",
                str(net.coordinator_dir),
                ROTATING,
                "--signing-key",
                str(current),
            ]
        )
        assert code == 1
        err = capsys.readouterr().err
        assert str(current) in err
        assert "current signing key" in err

    def test_another_partners_key_is_refused(self, network_factory: Any, capsys: Any) -> None:
        """A key another partner signs with cannot become this partner's."""
        net = network_factory(PARTNERS[:2], per_partner=8, overlaps={2: 2}, start=False)
        other = net.node_dirs["gemeente"] / "signing" / "node.pub"
        code = coordinator_cli.main(
            [
                "partner",
                "rotate-key",
                str(net.coordinator_dir),
                ROTATING,
                "--signing-key",
                str(other),
            ]
        )
        assert code == 1
        assert "signing key of partner 'gemeente'" in capsys.readouterr().err

    def test_an_overlap_beyond_the_limit_is_refused(
        self, network_factory: Any, capsys: Any
    ) -> None:
        """--overlap-days above 90 is refused with the range."""
        net = network_factory(PARTNERS[:2], per_partner=8, overlaps={2: 2}, start=False)
        code = coordinator_cli.main(
            [
                "partner",
                "rotate-key",
                str(net.coordinator_dir),
                ROTATING,
                "--signing-key",
                str(net.node_dirs[ROTATING] / "signing" / "node.pub"),
                "--overlap-days",
                "91",
            ]
        )
        assert code == 1
        assert "--overlap-days must be 0..90" in capsys.readouterr().err
