"""Rotating the coordinator's audit key: either key verifies an export spanning the rotation.

Real servers over real mTLS run a round, an operator rotates the audit key through the
CLI (`audit rotate-key`, as SUDO_USER), the serving coordinator runs another round with
the new key, and the officer's commands (`psi-coordinator audit verify`, `psi-node audit
verify-network`) verify the whole export with the old public key and with the new one.
The attacks: the retired key extending the log after the handover, a handover the new
key never endorsed, and a process still holding the retired key.
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from coordinator import cli as coordinator_cli
from coordinator.audit import CoordinatorAudit, open_audit
from kruispunt import pki, signing
from kruispunt.audit import AuditEvent, dump_jsonl, load_jsonl, seal, verify_events
from kruispunt.errors import ConfigError
from psi_node import cli as node_cli

PARTNERS = ["gemeente", "woonbron"]


@pytest.fixture
def rotated(network_factory: Any, capsys: pytest.CaptureFixture[str], monkeypatch, tmp_path):
    """A round, the audit key rotated by alice, a second round; the old key files kept."""
    net = network_factory(PARTNERS, per_partner=12, overlaps={2: 3})
    net.add_purpose()
    assert net.run().state == "completed"
    config = net.config
    old_private = tmp_path / "old-audit.ed25519"
    shutil.copy2(config.audit_key, old_private)
    old_public = tmp_path / "old-audit.pub"
    shutil.copy2(config.audit_public_key, old_public)
    monkeypatch.setenv("SUDO_USER", "alice")
    capsys.readouterr()
    code = coordinator_cli.main(
        ["audit", "rotate-key", str(net.coordinator_dir), "--reason", "yearly", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    answer = json.loads(out)
    assert net.run().state == "completed"  # the serving coordinator signs with the new key
    return net, answer, old_private, old_public


def export(net: Any, out: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert (
        coordinator_cli.main(["audit", "export", str(net.coordinator_dir), "--out", str(out)]) == 0
    )
    capsys.readouterr()
    return out


def verify_network(net: Any, capsys, coordinator_export: Path, key: Path) -> tuple[int, dict]:
    capsys.readouterr()
    status = node_cli.main(
        [
            "audit",
            "verify-network",
            str(net.node_dirs["woonbron"]),
            "--json",
            "--coordinator-export",
            str(coordinator_export),
            "--coordinator-key",
            str(key),
        ]
    )
    return status, json.loads(capsys.readouterr().out)


def reseal_from(events: list[AuditEvent], start: int, key: Any) -> list[AuditEvent]:
    """Re-chain and re-sign every event from index `start` on with `key` (an attacker's
    rewrite: contents kept, hashes and signatures made to fit)."""
    out = list(events[:start])
    for event in events[start:]:
        prev = out[-1].hash if out else "00" * 32
        out.append(
            seal(
                seq=event.seq,
                prev_hash=prev,
                time=_parse(event.time),
                event=event.event,
                actor=event.actor,
                on_behalf_of=event.on_behalf_of,
                access_point=event.access_point,
                action=event.action,
                basis=event.basis,
                round_id=event.round_id,
                details=event.details,
                signing_key=key,
            )
        )
    return out


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def write_events(path: Path, events: list[AuditEvent]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        dump_jsonl(events, fh)
    return path


class TestRotation:
    def test_either_key_verifies_an_export_spanning_the_rotation(self, rotated, capsys, tmp_path):
        """audit verify and verify-network accept the whole export under the old public key
        and under the new one; events before the handover carry the old key id, after it
        the new."""
        net, answer, _old_private, old_public = rotated
        config = net.config
        assert answer["previous_key_id"] == signing.key_id(signing.read_public_key(old_public))
        assert answer["new_key_id"] == signing.key_id(
            signing.read_public_key(config.audit_public_key)
        )
        assert Path(answer["retired_public_key"]).read_bytes() == old_public.read_bytes()
        coord = export(net, tmp_path / "c.jsonl", capsys)
        events = load_jsonl(io.StringIO(coord.read_text(encoding="utf-8")))
        handover = next(e for e in events if e.event == "audit.key_rotated")
        assert handover.seq == answer["handover_seq"]
        assert {e.key_id for e in events if e.seq <= handover.seq} == {answer["previous_key_id"]}
        after = [e for e in events if e.seq > handover.seq]
        assert any(e.event == "round.completed" for e in after)
        assert {e.key_id for e in after} == {answer["new_key_id"]}
        for key in (old_public, config.audit_public_key):
            status, result = verify_network(net, capsys, coord, key)
            assert result["problems"] == [], key
            assert status == 0
            assert result["rounds_compared"] == 2
            code = coordinator_cli.main(
                ["audit", "verify", str(net.coordinator_dir), "--public-key", str(key), "--json"]
            )
            verdict = json.loads(capsys.readouterr().out)
            assert code == 0
            assert verdict["ok"] is True
            assert verdict["events"] == len(events)

    def test_the_rotation_is_audited_with_the_person_and_reason(self, rotated, capsys, tmp_path):
        """The handover names alice, the reason and both keys, and the new key endorsed it."""
        net, answer, _old_private, _old_public = rotated
        coord = export(net, tmp_path / "c.jsonl", capsys)
        events = load_jsonl(io.StringIO(coord.read_text(encoding="utf-8")))
        (handover,) = [e for e in events if e.event == "audit.key_rotated"]
        assert handover.actor == "operator:alice"
        assert handover.details["reason"] == "yearly"
        assert handover.details["previous_key_id"] == answer["previous_key_id"]
        assert handover.details["new_key_id"] == answer["new_key_id"]
        assert len(handover.details["endorsement"]) == 128


class TestRotationAttacks:
    def test_the_retired_key_cannot_extend_the_log(self, rotated, capsys, tmp_path):
        """Events after the handover re-signed with the old key (the retired key's holder
        writing on): refused under either public key, naming the retired key."""
        net, answer, old_private, old_public = rotated
        coord = export(net, tmp_path / "c.jsonl", capsys)
        events = load_jsonl(io.StringIO(coord.read_text(encoding="utf-8")))
        start = answer["handover_seq"]  # index of the first event after the handover
        forged = write_events(
            tmp_path / "forged.jsonl",
            reseal_from(events, start, signing.load_signing_key(old_private)),
        )
        for key in (old_public, net.config.audit_public_key):
            status, result = verify_network(net, capsys, forged, key)
            assert status == 1
            first = result["first_problem"]
            assert f"event {start + 1}" in json.dumps(first) or first.get("seq") == start + 1
            assert "signed by a retired key (handed over at event" in json.dumps(first)

    def test_a_handover_the_new_key_did_not_endorse_is_refused(self, rotated, capsys, tmp_path):
        """A handover whose endorsement is not the new key's (re-sealed by the old key, so
        its own seal holds) breaks the chain at the handover."""
        net, answer, old_private, old_public = rotated
        coord = export(net, tmp_path / "c.jsonl", capsys)
        events = load_jsonl(io.StringIO(coord.read_text(encoding="utf-8")))
        index = answer["handover_seq"] - 1
        details = dict(events[index].details)
        details["endorsement"] = "00" * 64
        events[index] = dataclasses.replace(events[index], details=details)
        resealed = reseal_from(events, index, signing.load_signing_key(old_private))
        report = verify_events(resealed[: index + 1], signing.read_public_key(old_public))
        assert not report.ok
        assert report.first_bad_seq == answer["handover_seq"]
        assert report.reason == "key handover is not endorsed by the new key"
        status, result = verify_network(
            net, capsys, write_events(tmp_path / "f.jsonl", resealed), old_public
        )
        assert status == 1
        assert "not endorsed by the new key" in json.dumps(result["first_problem"])

    def test_a_process_still_holding_the_retired_key_cannot_append(self, rotated):
        """A log opened with the old key (no key file to reload) refuses to write: its
        event would break the chain for every verifier."""
        net, _answer, old_private, _old_public = rotated
        stale = CoordinatorAudit(net.config.database, signing.load_signing_key(old_private))
        try:
            with pytest.raises(ConfigError, match="handed over to key"):
                stale.append(
                    "operator.action",
                    actor="operator:x",
                    on_behalf_of="testnet",
                    access_point="t",
                    action="E",
                )
        finally:
            stale.close()
        assert net.coordinator.audit.verify().ok

    def test_a_leftover_next_key_the_log_does_not_record_is_refused(self, rotated, capsys):
        """A leftover .next key the log does not record is refused, never used."""
        net, _answer, _old_private, _old_public = rotated
        config = net.config
        leftover = config.audit_key.with_name(config.audit_key.name + ".next")
        pki.write_private_key(leftover, signing.generate_signing_key())
        code = coordinator_cli.main(["audit", "rotate-key", str(net.coordinator_dir)])
        err = capsys.readouterr().err
        assert code == 1
        assert "left over from a rotation the audit log does not record" in err


class TestInterrupted:
    def test_a_rotation_cut_short_after_the_handover_is_finished_by_running_it_again(
        self, network_factory, capsys
    ):
        """The handover is in the log but the key files were not moved: `audit rotate-key`
        again puts the recorded key in place, and the log verifies under it."""
        net = network_factory(PARTNERS, per_partner=12, overlaps={2: 3}, start=False)
        config = net.config
        old_public = signing.read_public_key(config.audit_public_key)
        pending = config.audit_key.with_name(config.audit_key.name + ".next")
        new_key = signing.generate_signing_key()
        pki.write_private_key(pending, new_key)
        audit = open_audit(config)
        try:
            audit.rotate_key(new_key, actor="operator:x", on_behalf_of="testnet", access_point="t")
        finally:
            audit.close()
        capsys.readouterr()
        assert (
            coordinator_cli.main(["audit", "rotate-key", str(net.coordinator_dir), "--json"]) == 0
        )
        answer = json.loads(capsys.readouterr().out)
        assert answer["new_key_id"] == signing.key_id(new_key.public_key())
        assert answer["previous_key_id"] == signing.key_id(old_public)
        assert not pending.exists()
        assert (
            signing.key_id(signing.read_public_key(config.audit_public_key)) == answer["new_key_id"]
        )
        audit = open_audit(config)
        try:
            audit.append(
                "operator.action",
                actor="operator:x",
                on_behalf_of="testnet",
                access_point="t",
                action="E",
            )
            assert audit.verify(old_public).ok
            assert audit.verify().ok
        finally:
            audit.close()
