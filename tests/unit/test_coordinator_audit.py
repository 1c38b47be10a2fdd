"""The coordinator's audit table: append-only SQLite, tamper detection, concurrency, export."""

from __future__ import annotations

import dataclasses
import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.audit import TABLE, CoordinatorAudit, verify_database
from kruispunt import signing
from kruispunt.audit import (
    FIELDS,
    AuditEvent,
    compute_hash,
    load_csv,
    load_jsonl,
    seal,
    verify_events,
    verify_excerpt,
)
from kruispunt.errors import AuditChainBroken, ConfigError

BSN = "111222333"  # synthetic, elfproef-valid
ROUND_A = "r20250301T093000-1a2b3c4d"
ROUND_B = "r20250302T101500-9f8e7d6c"


class FakeClock:
    """A clock that advances 1.5 s per reading."""

    def __init__(self) -> None:
        self.t = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.t += timedelta(milliseconds=1500)
        return self.t


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return signing.generate_signing_key()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "coordinator.sqlite"


@pytest.fixture
def audit(db: Path, key: Ed25519PrivateKey) -> Iterator[CoordinatorAudit]:
    log = CoordinatorAudit(db, key, now=FakeClock())
    yield log
    log.close()


def fill(audit: CoordinatorAudit, n: int = 8) -> list[AuditEvent]:
    """n events alternating between two rounds, with realistic details."""
    events = [
        audit.append(
            "round.created",
            actor="alice",
            on_behalf_of="netwerk-utrecht",
            access_point="cli@coordinator",
            action="C",
            basis="armoede-2025 v1; covenant cov-7",
            round_id=ROUND_A,
            details={"purpose": "armoede-2025", "partners": ["gemeente", "corporatie"]},
        )
    ]
    for i in range(2, n + 1):
        events.append(
            audit.append(
                "consent.given",
                actor="coordinator",
                on_behalf_of="gemeente",
                access_point="coordinator",
                action="E",
                basis="armoede-2025 v1",
                round_id=ROUND_A if i % 2 else ROUND_B,
                details={"partner": "gemeente", "set_size": 100 + i},
            )
        )
    return events


FORGE = "INSERT INTO audit_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"


@contextmanager
def raw(db: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection, as an attacker with file access would use."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def drop_triggers(conn: sqlite3.Connection) -> None:
    conn.execute(f"DROP TRIGGER {TABLE}_no_update")
    conn.execute(f"DROP TRIGGER {TABLE}_no_delete")


class TestSchema:
    def test_columns_are_the_event_fields_in_order(self, audit: CoordinatorAudit, db: Path) -> None:
        """The table's columns are exactly the event fields, in export order."""
        with raw(db) as conn:
            names = tuple(row[1] for row in conn.execute(f"PRAGMA table_info({TABLE})"))
        assert names == FIELDS

    def test_database_is_in_wal_mode(self, audit: CoordinatorAudit, db: Path) -> None:
        """The database file is switched to WAL journalling."""
        with raw(db) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_other_tables_are_left_alone(self, db: Path, key: Ed25519PrivateKey) -> None:
        """Opening the audit creates only its own objects and keeps other tables' data."""
        with raw(db) as conn:
            conn.execute("CREATE TABLE partners (id TEXT PRIMARY KEY)")
            conn.execute("INSERT INTO partners VALUES ('gemeente')")
        CoordinatorAudit(db, key).close()
        CoordinatorAudit(db, key).close()  # idempotent
        with raw(db) as conn:
            assert conn.execute("SELECT id FROM partners").fetchall() == [("gemeente",)]
            objects = {
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                )
            }
        assert objects == {
            "partners",
            TABLE,
            f"{TABLE}_round",
            f"{TABLE}_event",
            f"{TABLE}_no_update",
            f"{TABLE}_no_delete",
        }

    def test_a_file_that_is_not_sqlite_is_a_config_error(
        self, tmp_path: Path, key: Ed25519PrivateKey
    ) -> None:
        """Pointing the audit at a non-database file raises ConfigError."""
        bogus = tmp_path / "not.sqlite"
        bogus.write_bytes(b"this is not a database" * 100)
        with pytest.raises(ConfigError):
            CoordinatorAudit(bogus, key)


class TestAppend:
    def test_events_chain_in_order_with_the_injected_clock(self, audit: CoordinatorAudit) -> None:
        """append returns sealed events numbered 1.., linked, timed by the injected clock."""
        events = fill(audit, 3)
        assert [e.seq for e in events] == [1, 2, 3]
        assert events[1].prev_hash == events[0].hash
        assert [e.time for e in events] == [
            "2025-03-01T09:30:01.500Z",
            "2025-03-01T09:30:03.000Z",
            "2025-03-01T09:30:04.500Z",
        ]
        assert audit.events() == events
        assert audit.head() == events[-1].head

    def test_events_filter_by_round(self, audit: CoordinatorAudit) -> None:
        """events(round_id) returns that round's events only, in chain order."""
        fill(audit, 8)
        assert [e.seq for e in audit.events(ROUND_A)] == [1, 3, 5, 7]
        assert [e.seq for e in audit.events(ROUND_B)] == [2, 4, 6, 8]
        assert audit.events("r-unknown") == []

    def test_identifier_in_details_is_refused_and_not_written(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """A BSN-looking detail raises ValueError and leaves no row and no trace in the file."""
        fill(audit, 2)
        with pytest.raises(ValueError, match="BSN-like") as caught:
            audit.append(
                "operator.action", actor="alice", on_behalf_of="net", access_point="cli",
                action="R", details={"looked_up": BSN},
            )  # fmt: skip
        assert BSN not in str(caught.value)
        assert len(audit.events()) == 2
        audit.close()
        for path in db.parent.iterdir():
            assert BSN.encode() not in path.read_bytes()

    def test_missing_required_details_are_refused(self, audit: CoordinatorAudit) -> None:
        """consent.given without the partner's set_size is refused before writing."""
        with pytest.raises(ValueError, match="set_size"):
            audit.append(
                "consent.given", actor="coordinator", on_behalf_of="gemeente",
                access_point="coordinator", action="E", details={"partner": "gemeente"},
            )  # fmt: skip
        assert audit.events() == []

    def test_chain_continues_after_reopening(self, db: Path, key: Ed25519PrivateKey) -> None:
        """A new CoordinatorAudit on the same file continues the same chain."""
        with CoordinatorAudit(db, key) as first:
            fill(first, 3)
        with CoordinatorAudit(db, key) as second:
            event = fill(second, 1)[0]
            assert event.seq == 4
            assert second.verify().ok

    def test_two_threads_keep_one_chain(self, audit: CoordinatorAudit) -> None:
        """Appends from four threads at once produce one dense, valid chain."""

        def worker(name: str) -> None:
            for i in range(25):
                audit.append(
                    "phase.done", actor=name, on_behalf_of="net", access_point="t",
                    action="E", round_id=ROUND_A, details={"i": i},
                )  # fmt: skip

        threads = [threading.Thread(target=worker, args=(f"t{n}",)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = audit.events()
        assert [e.seq for e in events] == list(range(1, 101))
        assert audit.verify().ok


class TestTriggers:
    def test_update_is_blocked(self, audit: CoordinatorAudit, db: Path) -> None:
        """UPDATE on the audit table fails at the database level."""
        fill(audit, 3)
        with raw(db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
        assert audit.events()[1].actor == "coordinator"

    def test_delete_is_blocked(self, audit: CoordinatorAudit, db: Path) -> None:
        """DELETE on the audit table fails at the database level."""
        fill(audit, 3)
        with raw(db) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM audit_events WHERE seq = 3")
        assert len(audit.events()) == 3


class TestTamperDetection:
    def test_untouched_table_verifies(self, audit: CoordinatorAudit, db: Path) -> None:
        """verify and verify_database accept an untouched table."""
        fill(audit)
        assert audit.verify().ok
        report = verify_database(db, audit.public_key)
        assert (report.ok, report.count) == (True, 8)

    def test_edited_field_is_caught(self, audit: CoordinatorAudit, db: Path) -> None:
        """Editing details via raw SQL (triggers dropped) is caught at that seq."""
        fill(audit)
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute(
                "UPDATE audit_events SET details = ? WHERE seq = 5",
                (json.dumps({"partner": "gemeente", "set_size": 1}),),
            )
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 5)
        assert "hash does not match" in report.reason
        assert verify_database(db, audit.public_key).first_bad_seq == 5

    def test_deleted_row_is_caught(self, audit: CoordinatorAudit, db: Path) -> None:
        """Deleting a row (triggers dropped) names the missing seq."""
        fill(audit)
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute("DELETE FROM audit_events WHERE seq = 4")
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 4)
        assert "missing" in report.reason

    def test_forged_row_inserted_in_the_middle_is_caught(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """A forged, correctly linked row slotted in at seq 3 (rest renumbered) fails at 3."""
        events = fill(audit)
        mallory = signing.generate_signing_key()
        forged = seal(
            seq=3, prev_hash=events[1].hash, time=datetime(2025, 3, 1, tzinfo=UTC),
            event="consent.given", actor="coordinator", on_behalf_of="corporatie",
            access_point="coordinator", action="E", basis="armoede-2025 v1", round_id=ROUND_A,
            details={"partner": "corporatie", "set_size": 5}, signing_key=mallory,
        )  # fmt: skip
        with raw(db) as conn:
            drop_triggers(conn)
            # Two steps, because seq is the primary key (and must stay >= 1).
            conn.execute("UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 3")
            conn.execute("UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000")
            conn.execute(
                FORGE,
                row_of(forged),
            )
        assert [e.seq for e in audit.events()] == list(range(1, 10))
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_forged_row_appended_with_our_key_id_is_caught(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """A forged last row claiming our key id but signed by another key fails at its seq."""
        events = fill(audit, 4)
        mallory = signing.generate_signing_key()
        forged = seal(
            seq=5, prev_hash=events[-1].hash, time=datetime(2025, 3, 2, tzinfo=UTC),
            event="results.delivered", actor="coordinator", on_behalf_of="gemeente",
            access_point="coordinator", action="E", basis="", round_id=ROUND_A,
            details={"partner": "gemeente", "flagged_count": 0}, signing_key=mallory,
        )  # fmt: skip
        claimed = dataclasses.replace(forged, key_id=events[0].key_id)
        digest = compute_hash(claimed)
        signature = signing.sign(mallory, b"kruispunt/audit/v1", bytes.fromhex(digest))
        claimed = dataclasses.replace(claimed, hash=digest, signature=signature.hex())
        with raw(db) as conn:  # inserting needs no dropped trigger
            conn.execute(FORGE, row_of(claimed))
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 5)
        assert "signature" in report.reason

    def test_swapped_seqs_are_caught(self, audit: CoordinatorAudit, db: Path) -> None:
        """Swapping the seqs of rows 3 and 4 (reordering) is caught at seq 3."""
        fill(audit)
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute("UPDATE audit_events SET seq = 1000 WHERE seq = 3")
            conn.execute("UPDATE audit_events SET seq = 3 WHERE seq = 4")
            conn.execute("UPDATE audit_events SET seq = 4 WHERE seq = 1000")
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_edit_resigned_with_another_key_is_caught(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """An edited row whose hash and signature were redone with another key fails at its seq."""
        events = fill(audit)
        mallory = signing.generate_signing_key()
        target = events[5]
        forged = seal(
            seq=target.seq, prev_hash=target.prev_hash,
            time=datetime.fromisoformat(target.time), event=target.event, actor=target.actor,
            on_behalf_of=target.on_behalf_of, access_point=target.access_point,
            action=target.action, basis=target.basis, round_id=target.round_id,
            details={"partner": "gemeente", "set_size": 1}, signing_key=mallory,
        )  # fmt: skip
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute("DELETE FROM audit_events WHERE seq = ?", (target.seq,))
            conn.execute(FORGE, row_of(forged))
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 6)
        assert "another key" in report.reason
        # Under the forger's key the chain fails at once: it signed that one row only.
        assert audit.verify(mallory.public_key()).first_bad_seq == 1

    def test_truncated_tail_is_caught_against_a_kept_head(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """Deleting the newest rows is caught when the head was kept elsewhere."""
        fill(audit)
        head = audit.head()
        assert head is not None
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute("DELETE FROM audit_events WHERE seq > 6")
        assert audit.verify().ok  # a clean cut is invisible without the head
        report = audit.verify(expected_head=head)
        assert (report.ok, report.first_bad_seq) == (False, 7)
        report = verify_database(db, audit.public_key, expected_head=head)
        assert (report.ok, report.first_bad_seq) == (False, 7)

    def test_undecodable_row_is_reported_not_raised(
        self, audit: CoordinatorAudit, db: Path
    ) -> None:
        """A row whose details are not JSON fails verification at its seq."""
        fill(audit)
        with raw(db) as conn:
            drop_triggers(conn)
            conn.execute("UPDATE audit_events SET details = '{broken' WHERE seq = 2")
        report = audit.verify()
        assert (report.ok, report.first_bad_seq) == (False, 2)
        with pytest.raises(AuditChainBroken) as caught:
            audit.events()
        assert caught.value.seq == 2

    def test_dropped_table_does_not_verify(self, audit: CoordinatorAudit, db: Path) -> None:
        """Dropping the whole table is reported, not taken for an empty log."""
        fill(audit, 2)
        with raw(db) as conn:
            conn.execute("DROP TABLE audit_events")
        assert not audit.verify().ok
        assert not verify_database(db, audit.public_key).ok


class TestVerifyDatabase:
    def test_public_key_file_alone_is_enough(
        self, audit: CoordinatorAudit, db: Path, tmp_path: Path
    ) -> None:
        """A privacy officer verifies from the PEM public key, without the private key."""
        fill(audit)
        pem = tmp_path / "coordinator-audit.pub"
        pem.write_bytes(signing.public_key_pem(audit.public_key))
        report = verify_database(db, signing.load_public_key(pem.read_bytes()))
        assert (report.ok, report.count) == (True, 8)

    def test_wrong_public_key_fails_at_seq_1(self, audit: CoordinatorAudit, db: Path) -> None:
        """Verifying under another key fails at the first event."""
        fill(audit, 2)
        other = signing.generate_signing_key().public_key()
        assert verify_database(db, other).first_bad_seq == 1

    def test_read_only_open_does_not_write(self, audit: CoordinatorAudit, db: Path) -> None:
        """verify_database cannot write: the file is opened read-only."""
        fill(audit, 2)
        audit.close()
        before = db.read_bytes()
        assert verify_database(db, signing.generate_signing_key().public_key()).count == 0
        assert db.read_bytes() == before

    def test_missing_file_is_a_config_error(self, tmp_path: Path, key: Ed25519PrivateKey) -> None:
        """A database path that does not exist raises ConfigError and creates nothing."""
        missing = tmp_path / "absent.sqlite"
        with pytest.raises(ConfigError):
            verify_database(missing, key.public_key())
        assert not missing.exists()


def row_of(event: AuditEvent) -> tuple[object, ...]:
    values: list[object] = []
    for name in FIELDS:
        value = getattr(event, name)
        values.append(json.dumps(value) if name == "details" else value)
    return tuple(values)


class TestExport:
    def test_jsonl_export_round_trips(self, audit: CoordinatorAudit) -> None:
        """The JSON Lines export reads back to the stored events and verifies."""
        events = fill(audit)
        out = io.StringIO()
        assert audit.export(out, fmt="jsonl") == 8
        back = load_jsonl(io.StringIO(out.getvalue()))
        assert back == events
        assert verify_events(back, audit.public_key).ok

    def test_csv_export_round_trips(self, audit: CoordinatorAudit) -> None:
        """The CSV export reads back to the stored events and verifies."""
        events = fill(audit)
        out = io.StringIO()
        assert audit.export(out, fmt="csv") == 8
        back = load_csv(io.StringIO(out.getvalue()))
        assert back == events
        assert verify_events(back, audit.public_key).ok

    @pytest.mark.parametrize("fmt", ["jsonl", "csv"])
    def test_round_export_keeps_the_chain_fields(self, audit: CoordinatorAudit, fmt: str) -> None:
        """A one-round export carries seq, hashes and signatures, so each event still checks."""
        fill(audit)
        out = io.StringIO()
        assert audit.export(out, fmt=fmt, round_id=ROUND_B) == 4  # type: ignore[arg-type]
        reader = load_jsonl if fmt == "jsonl" else load_csv
        back = reader(io.StringIO(out.getvalue()))
        assert [e.seq for e in back] == [2, 4, 6, 8]
        assert all(e.hash and e.prev_hash and e.signature for e in back)
        assert verify_excerpt(back, audit.public_key).ok
        back[1] = dataclasses.replace(back[1], details={"partner": "gemeente", "set_size": 0})
        assert verify_excerpt(back, audit.public_key).first_bad_seq == 4

    def test_unknown_format_is_refused(self, audit: CoordinatorAudit) -> None:
        """Only jsonl and csv are export formats."""
        with pytest.raises(ValueError, match="format"):
            audit.export(io.StringIO(), fmt="xml")  # type: ignore[arg-type]
