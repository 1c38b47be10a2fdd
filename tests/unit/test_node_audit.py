"""The node's JSON Lines audit log: durability, tamper detection, concurrency, cross-check."""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.audit import CoordinatorAudit
from kruispunt import pki, signing
from kruispunt.audit import (
    AuditEvent,
    event_to_json,
    load_csv,
    load_jsonl,
    seal,
    verify_events,
)
from kruispunt.errors import AuditChainBroken, ConfigError
from psi_node.audit import Mismatch, NodeAudit, cross_check, verify_file

BSN = "111222333"  # synthetic, elfproef-valid
PARTNER = "corporatie-west"
R1 = "r20250301T093000-1a2b3c4d"
R2 = "r20250308T093000-5e6f7a8b"


class FakeClock:
    """A clock that advances 250 ms per reading."""

    def __init__(self) -> None:
        self.t = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=250)
        return self.t


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return signing.generate_signing_key()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "audit" / "node-audit.jsonl"


@pytest.fixture
def audit(path: Path, key: Ed25519PrivateKey) -> Iterator[NodeAudit]:
    log = NodeAudit(path, key, now=FakeClock())
    yield log
    log.close()


def node_append(log: NodeAudit, event: str, round_id: str, **details: object) -> AuditEvent:
    return log.append(
        event,
        actor="psi-node",
        on_behalf_of=PARTNER,
        access_point="0.0.0.0:7443",
        action="E",
        basis="armoede-2025 v1",
        round_id=round_id,
        details=details,
    )


def node_round(log: NodeAudit, round_id: str, *, set_size: int, flagged: int) -> None:
    """What the node's round code writes for one successful round."""
    node_append(log, "manifest.seen", round_id, purpose="armoede-2025", partners=["a", PARTNER])
    node_append(log, "consent.given", round_id, set_size=set_size, excluded=2, invalid=1)
    node_append(log, "records.sent", round_id, set_size=set_size)
    node_append(log, "results.received", round_id, flagged_count=flagged)
    node_append(log, "results.written", round_id, flagged_count=flagged, path="results/r.csv")


def fill(log: NodeAudit, n: int) -> list[AuditEvent]:
    return [node_append(log, "phase.done", R1, phase="blind", points=i) for i in range(n)]


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


def write_lines(path: Path, parts: list[bytes]) -> None:
    path.write_bytes(b"\n".join(parts))


class TestFile:
    def test_file_is_created_owner_only(self, path: Path, key: Ed25519PrivateKey) -> None:
        """The log file gets mode 0600 even under a permissive umask."""
        old = os.umask(0)
        try:
            with NodeAudit(path, key) as log:
                fill(log, 1)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_existing_wider_file_is_narrowed(self, path: Path, key: Ed25519PrivateKey) -> None:
        """An existing log readable by others is narrowed to 0600 on open."""
        path.parent.mkdir(parents=True)
        path.touch()
        path.chmod(0o644)
        NodeAudit(path, key).close()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_each_event_is_one_canonical_json_line(self, audit: NodeAudit, path: Path) -> None:
        """Every append adds exactly one newline-terminated line: the event's canonical JSON."""
        events = fill(audit, 3)
        text = path.read_text("utf-8")
        assert text.endswith("\n")
        assert text.splitlines() == [event_to_json(e) for e in events]

    def test_chain_survives_a_restart(self, path: Path, key: Ed25519PrivateKey) -> None:
        """A new NodeAudit on the same file continues the chain from its last line."""
        with NodeAudit(path, key) as first:
            before = fill(first, 3)
        with NodeAudit(path, key) as second:
            after = fill(second, 2)
            assert after[0].seq == 4
            assert after[0].prev_hash == before[-1].hash
            report = second.verify()
        assert (report.ok, report.count) == (True, 5)

    def test_head_reads_the_tail_of_a_long_log(self, path: Path, key: Ed25519PrivateKey) -> None:
        """The head is found from the file's tail even when lines exceed one read chunk."""
        with NodeAudit(path, key) as log:
            for i in range(3):
                node_append(log, "operator.action", "", note="x" * 20_000, i=i)
        with NodeAudit(path, key) as log:
            assert node_append(log, "operator.action", "", i=3).seq == 4
            assert log.verify().ok

    def test_identifier_in_details_is_refused_and_not_written(
        self, audit: NodeAudit, path: Path
    ) -> None:
        """A BSN-looking detail raises ValueError before anything reaches the file."""
        fill(audit, 1)
        before = path.read_bytes()
        with pytest.raises(ValueError, match="BSN-like") as caught:
            node_append(audit, "records.sent", R1, set_size=3, first_record=BSN)
        assert BSN not in str(caught.value)
        assert path.read_bytes() == before

    def test_missing_required_details_are_refused(self, audit: NodeAudit, path: Path) -> None:
        """results.written without flagged_count is refused before writing."""
        with pytest.raises(ValueError, match="flagged_count"):
            node_append(audit, "results.written", R1, path="results/x.csv")
        assert path.read_bytes() == b""

    def test_two_threads_keep_one_chain(self, audit: NodeAudit) -> None:
        """Appends from four threads at once produce one dense, valid chain."""

        def worker(n: int) -> None:
            for i in range(25):
                node_append(audit, "phase.done", R1, worker=n, i=i)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [e.seq for e in audit.events()] == list(range(1, 101))
        assert audit.verify().ok


class TestTamperDetection:
    def test_edited_line_is_caught(self, audit: NodeAudit, path: Path) -> None:
        """Editing a value inside line 3 is caught at seq 3."""
        fill(audit, 5)
        parts = lines(path)
        data = json.loads(parts[2])
        data["details"]["points"] = 0
        parts[2] = json.dumps(data).encode()
        write_lines(path, parts)
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert "hash does not match" in report.reason

    def test_deleted_line_is_caught(self, audit: NodeAudit, path: Path) -> None:
        """Removing line 2 names seq 2 as missing."""
        fill(audit, 5)
        parts = lines(path)
        del parts[1]
        write_lines(path, parts)
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 2)

    def test_reordered_lines_are_caught(self, audit: NodeAudit, path: Path) -> None:
        """Swapping lines 3 and 4 is caught at seq 3."""
        fill(audit, 5)
        parts = lines(path)
        parts[2], parts[3] = parts[3], parts[2]
        write_lines(path, parts)
        assert audit.verify().first_bad_seq == 3

    def test_inserted_forged_line_is_caught(
        self, audit: NodeAudit, path: Path, key: Ed25519PrivateKey
    ) -> None:
        """A forged, linked line signed by another key and inserted as seq 3 fails at seq 3."""
        events = fill(audit, 4)
        forged = seal(
            seq=3, prev_hash=events[1].hash, time=datetime(2025, 3, 1, tzinfo=UTC),
            event="consent.refused", actor="psi-node", on_behalf_of=PARTNER,
            access_point="x", action="E", basis="", round_id=R1,
            details={"reason": "not agreed"}, signing_key=signing.generate_signing_key(),
        )  # fmt: skip
        parts = lines(path)
        parts.insert(2, event_to_json(forged).encode())
        write_lines(path, parts)
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert "another key" in report.reason

    def test_edit_resigned_with_another_key_is_caught(self, audit: NodeAudit, path: Path) -> None:
        """An edited line with hash and signature redone by a forger fails at its seq."""
        events = fill(audit, 4)
        target = events[3]
        forged = seal(
            seq=target.seq, prev_hash=target.prev_hash,
            time=datetime.fromisoformat(target.time), event=target.event, actor=target.actor,
            on_behalf_of=target.on_behalf_of, access_point=target.access_point,
            action=target.action, basis=target.basis, round_id=target.round_id,
            details={"phase": "blind", "points": 0}, signing_key=signing.generate_signing_key(),
        )  # fmt: skip
        parts = lines(path)
        parts[3] = event_to_json(forged).encode()
        write_lines(path, parts)
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 4)
        assert "another key" in report.reason

    def test_torn_last_line_is_reported(self, audit: NodeAudit, path: Path) -> None:
        """A half-written last line (crash mid-append) is reported with the seq it would have."""
        fill(audit, 3)
        full = event_to_json(node_append(audit, "phase.done", R1, n=4)).encode()
        path.write_bytes(path.read_bytes()[: -(len(full) // 2) - 1])
        report = audit.verify()
        assert (report.ok, report.first_bad_seq, report.count) == (False, 4, 3)
        assert "line 4 is incomplete" in report.reason

    def test_append_after_a_torn_line_continues_and_keeps_reporting_it(
        self, path: Path, key: Ed25519PrivateKey
    ) -> None:
        """After a crash the chain continues from the last whole event; verify flags the tear."""
        with NodeAudit(path, key) as log:
            fill(log, 3)
            full = event_to_json(node_append(log, "phase.done", R1, n=4)).encode()
        path.write_bytes(path.read_bytes()[: -(len(full) // 2) - 1])
        with NodeAudit(path, key) as log:
            event = node_append(log, "operator.action", "", note="restarted")
            assert event.seq == 4
            assert [e.seq for e in log.events()] == [1, 2, 3, 4]
            report = log.verify()
        assert (report.ok, report.first_bad_seq) == (False, 4)
        assert "line 4 does not parse" in report.reason
        assert len(path.read_text("utf-8").splitlines()) == 5

    def test_whole_event_missing_only_its_newline_is_kept(
        self, path: Path, key: Ed25519PrivateKey
    ) -> None:
        """A crash right before the newline leaves a whole event: the chain continues after it."""
        with NodeAudit(path, key) as log:
            fill(log, 3)
        path.write_bytes(path.read_bytes()[:-1])
        with NodeAudit(path, key) as log:
            assert log.verify().ok
            assert node_append(log, "operator.action", "", note="restarted").seq == 4
            assert log.verify().ok

    def test_unreadable_last_complete_line_stops_appends(
        self, audit: NodeAudit, path: Path
    ) -> None:
        """If the last complete line is garbage, append refuses rather than guess the head."""
        fill(audit, 2)
        path.write_bytes(path.read_bytes() + b"{not an event}\n")
        with pytest.raises(AuditChainBroken, match="last complete line"):
            fill(audit, 1)

    def test_truncated_tail_is_caught_against_a_kept_head(
        self, audit: NodeAudit, path: Path
    ) -> None:
        """Cutting whole lines off the end is caught when the head was kept elsewhere."""
        fill(audit, 5)
        head = audit.head()
        assert head is not None
        write_lines(path, [*lines(path)[:3], b""])
        assert audit.verify().ok
        report = audit.verify(expected_head=head)
        assert (report.ok, report.first_bad_seq) == (False, 4)

    def test_verify_file_needs_only_the_public_key(self, audit: NodeAudit, path: Path) -> None:
        """verify_file checks the log with a public key; another key fails at seq 1."""
        fill(audit, 3)
        assert verify_file(path, audit.public_key).ok
        other = signing.generate_signing_key().public_key()
        assert verify_file(path, other).first_bad_seq == 1

    def test_verify_file_on_a_missing_log_is_a_config_error(self, tmp_path: Path) -> None:
        """A missing log file raises ConfigError."""
        with pytest.raises(ConfigError):
            verify_file(tmp_path / "absent.jsonl", signing.generate_signing_key().public_key())


class TestExport:
    def test_jsonl_and_csv_round_trip(self, audit: NodeAudit) -> None:
        """Both export formats read back to the logged events, which still verify."""
        events = fill(audit, 4)
        for fmt, reader in (("jsonl", load_jsonl), ("csv", load_csv)):
            out = io.StringIO()
            assert audit.export(out, fmt=fmt) == 4  # type: ignore[arg-type]
            back = reader(io.StringIO(out.getvalue()))
            assert back == events
            assert verify_events(back, audit.public_key).ok

    def test_export_by_round(self, audit: NodeAudit) -> None:
        """A one-round export holds that round's events only."""
        node_round(audit, R1, set_size=10, flagged=1)
        node_round(audit, R2, set_size=12, flagged=2)
        out = io.StringIO()
        assert audit.export(out, round_id=R2) == 5
        assert {e.round_id for e in load_jsonl(io.StringIO(out.getvalue()))} == {R2}


def coordinator_round(
    log: CoordinatorAudit, round_id: str, *, set_size: int, flagged: int, partner: str = PARTNER
) -> None:
    """What the coordinator's round code writes about this partner for one round."""

    def append(event: str, **details: object) -> None:
        log.append(
            event,
            actor="coordinator",
            on_behalf_of=partner,
            access_point="coordinator",
            action="E",
            basis="armoede-2025 v1",
            round_id=round_id,
            details=details,
        )

    append("round.created", purpose="armoede-2025", partners=["gemeente", partner])
    append("consent.given", partner="gemeente", set_size=900)
    append("consent.given", partner=partner, set_size=set_size)
    append("set_sizes", set_sizes={"gemeente": 900, partner: set_size})
    append("tally.summary", flagged={"gemeente": 3, partner: flagged})
    append("results.delivered", partner="gemeente", flagged_count=3)
    append("results.delivered", partner=partner, flagged_count=flagged)


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorAudit]:
    log = CoordinatorAudit(tmp_path / "coordinator.sqlite", signing.generate_signing_key())
    yield log
    log.close()


class TestCrossCheck:
    def test_consistent_logs_have_no_mismatch(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """A node log and a coordinator export that agree on every round give no mismatch."""
        node_round(audit, R1, set_size=120, flagged=4)
        node_round(audit, R2, set_size=130, flagged=0)
        coordinator_round(coordinator, R1, set_size=120, flagged=4)
        coordinator_round(coordinator, R2, set_size=130, flagged=0)
        out = io.StringIO()
        coordinator.export(out)
        exported = load_jsonl(io.StringIO(out.getvalue()))
        assert cross_check(audit.events(), exported, partner=PARTNER) == []

    def test_planted_flagged_count_mismatch_is_found(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """Results written with another count than delivered are listed with round and field."""
        node_round(audit, R1, set_size=120, flagged=4)
        node_round(audit, R2, set_size=130, flagged=1)
        coordinator_round(coordinator, R1, set_size=120, flagged=4)
        coordinator_round(coordinator, R2, set_size=130, flagged=2)
        assert cross_check(audit.events(), coordinator.events(), partner=PARTNER) == [
            Mismatch(R2, "flagged_count", 1, 2)
        ]

    def test_consent_and_set_size_mismatches_are_found(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """A refusal the coordinator recorded as consent, and a wrong set size, are both listed."""
        node_append(audit, "manifest.seen", R1, purpose="armoede-2025")
        node_append(audit, "consent.refused", R1, reason="purpose not agreed")
        node_round(audit, R2, set_size=130, flagged=1)
        coordinator_round(coordinator, R1, set_size=120, flagged=0)
        coordinator_round(coordinator, R2, set_size=131, flagged=1)
        found = cross_check(audit.events(), coordinator.events(), partner=PARTNER)
        assert found == [
            Mismatch(R1, "consent", "refused", "given"),
            Mismatch(R1, "set_size", None, 120),
            Mismatch(R1, "records_sent", None, 120),
            Mismatch(R1, "flagged_count", None, 0),
            Mismatch(R2, "set_size", 130, 131),
            Mismatch(R2, "records_sent", 130, 131),
        ]

    def test_round_only_one_side_knows_is_found(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """Results the coordinator says it delivered in a round the node never logged show up."""
        coordinator_round(coordinator, R1, set_size=50, flagged=2)
        found = cross_check(audit.events(), coordinator.events(), partner=PARTNER)
        assert {m.field for m in found} == {"consent", "set_size", "records_sent", "flagged_count"}
        assert {m.round_id for m in found} == {R1}

    def test_other_partners_events_are_ignored(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """Coordinator events about other partners never count against this node."""
        coordinator_round(coordinator, R1, set_size=50, flagged=2, partner="school-noord")
        node_round(audit, R1, set_size=50, flagged=2)
        assert cross_check(audit.events(), coordinator.events(), partner="school-noord") == []
        # This node took no part in R1: gemeente's and school-noord's events are not about it.
        assert cross_check([], coordinator.events(), partner=PARTNER) == []

    def test_rounds_restricts_the_comparison(
        self, audit: NodeAudit, coordinator: CoordinatorAudit
    ) -> None:
        """With rounds given, only those rounds are compared (for a one-round export)."""
        node_round(audit, R1, set_size=120, flagged=4)
        node_round(audit, R2, set_size=130, flagged=1)
        coordinator_round(coordinator, R2, set_size=130, flagged=1)
        assert cross_check(audit.events(), coordinator.events(R2), partner=PARTNER) != []
        assert (
            cross_check(audit.events(), coordinator.events(R2), partner=PARTNER, rounds=[R2]) == []
        )

    def test_last_event_of_a_kind_counts(self, audit: NodeAudit) -> None:
        """When a round logs an event twice (retry), the later one is compared."""
        node_round(audit, R1, set_size=10, flagged=1)
        node_append(audit, "results.written", R1, flagged_count=2)
        events = audit.events()
        coordinator_events: list[AuditEvent] = []
        found = cross_check(events, coordinator_events, partner=PARTNER)
        assert Mismatch(R1, "flagged_count", 2, None) in found


class TestKeyHandover:
    """Another process rotated the key (`psi-node rotate-signing-key`): this one follows."""

    def test_a_process_holding_the_retired_key_cannot_append(
        self, path: Path, key: Ed25519PrivateKey
    ) -> None:
        """After a handover elsewhere, an append with the old key is refused, not written."""
        with NodeAudit(path, key) as serving, NodeAudit(path, key) as cli:
            fill(serving, 2)
            cli.rotate_key(
                signing.generate_signing_key(), actor="a", on_behalf_of="b", access_point="cli"
            )
            before = lines(path)
            with pytest.raises(ConfigError, match="continues with signing key"):
                fill(serving, 1)
            assert lines(path) == before

    def test_with_its_key_file_it_adopts_the_new_key(
        self, path: Path, key: Ed25519PrivateKey, tmp_path: Path
    ) -> None:
        """Given the key file, the process reads the new key and the chain verifies."""
        key_file = tmp_path / "node.ed25519"
        new = signing.generate_signing_key()
        with NodeAudit(path, key, key_path=key_file) as serving, NodeAudit(path, key) as cli:
            fill(serving, 2)
            cli.rotate_key(new, actor="a", on_behalf_of="b", access_point="cli")
            pki.write_private_key(key_file, new)
            fill(serving, 2)
            assert serving.verify(key.public_key()).ok
            assert serving.verify(new.public_key()).ok
            assert serving.public_key == new.public_key()
