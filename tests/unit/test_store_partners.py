"""The partners table keeps each partner's agreement key; an older database gains the column."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime

from coordinator.report.gather import partner_keys
from coordinator.store import Partner, Store
from kruispunt import signing

# The partners table as a database made before the roster has it.
OLD_PARTNERS = """
CREATE TABLE partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    added_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
"""


def partner(pid: str, agreement_key: bytes) -> Partner:
    return Partner(
        id=pid,
        name=f"Organisatie {pid}",
        address="127.0.0.1:9",
        cert_fingerprint="ab" * 32,
        cert_pem="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        signing_key=b"\x01" * 32,
        agreement_key=agreement_key,
        added_at="2026-01-01T00:00:00+00:00",
        active=True,
    )


def old_database(path):
    db = sqlite3.connect(path)
    db.executescript(OLD_PARTNERS)
    db.execute(
        "INSERT INTO partners VALUES (?,?,?,?,?,?,?,?)",
        ("gemeente", "Gemeente", "127.0.0.1:9", "cd" * 32, "pem", b"\x02" * 32, "then", 1),
    )
    db.commit()
    db.close()


def columns(path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[1] for row in db.execute("PRAGMA table_info(partners)")]
    finally:
        db.close()


class TestAgreementKeyColumn:
    def test_agreement_key_round_trips(self, tmp_path):
        """A partner's agreement key is stored and read back byte for byte."""
        store = Store(tmp_path / "c.db")
        key = bytes(range(32))
        store.add_partner(partner("gemeente", key))
        assert store.partner("gemeente").agreement_key == key
        assert [p.agreement_key for p in store.partners()] == [key]
        store.close()
        readonly = Store(tmp_path / "c.db", readonly=True)
        assert readonly.partner("gemeente").agreement_key == key
        readonly.close()

    def test_old_database_gains_the_column_with_empty_keys(self, tmp_path):
        """Opening a database without the column adds it; existing partners have b""."""
        path = tmp_path / "old.db"
        old_database(path)
        assert "agreement_key" not in columns(path)
        store = Store(path)
        assert "agreement_key" in columns(path)
        existing = store.partner("gemeente")
        assert existing is not None
        assert existing.agreement_key == b""
        assert existing.signing_key == b"\x02" * 32
        assert existing.cert_fingerprint == "cd" * 32
        store.add_partner(partner("woonbron", b"\x07" * 32))
        assert store.partner("woonbron").agreement_key == b"\x07" * 32
        store.close()

    def test_migration_runs_once(self, tmp_path):
        """A migrated database opens again without error and keeps its rows."""
        path = tmp_path / "old.db"
        old_database(path)
        Store(path).close()
        store = Store(path)
        assert [p.id for p in store.partners()] == ["gemeente"]
        assert columns(path).count("agreement_key") == 1
        store.close()

    def test_readonly_store_reads_an_unmigrated_database(self, tmp_path):
        """A read-only store cannot add the column; it reads the key as empty instead."""
        path = tmp_path / "old.db"
        old_database(path)
        store = Store(path, readonly=True)
        assert store.partner("gemeente").agreement_key == b""
        assert [p.id for p in store.partners()] == ["gemeente"]
        store.close()
        assert "agreement_key" not in columns(path)


class TestRetiredKeys:
    """Every key a rotation replaced stays on record, with the end of its overlap."""

    T1 = "2026-03-08T00:00:00+00:00"
    T2 = "2026-09-08T00:00:00+00:00"

    def rotated_twice(self, tmp_path):
        keys = [
            signing.public_key_bytes(signing.generate_signing_key().public_key()) for _ in "abc"
        ]
        store = Store(tmp_path / "c.db")
        store.add_partner(dataclasses.replace(partner("p1", b"\x02" * 32), signing_key=keys[0]))
        for new, until in ((keys[1], self.T1), (keys[2], self.T2)):
            store.rotate_partner_key(
                "p1", new, valid_until=until, rotated_at=until, rotated_by="operator:alice"
            )
        return store, keys

    def test_both_rotations_are_kept_the_overlap_only_for_the_last(self, tmp_path):
        store, keys = self.rotated_twice(tmp_path)
        assert store.retired_keys("p1") == [(keys[0], self.T1), (keys[1], self.T2)]
        assert store.key_overlap("p1") == (keys[1], self.T2)

    def test_a_report_takes_the_keys_valid_when_the_round_ran(self, tmp_path):
        store, keys = self.rotated_twice(tmp_path)
        registered = store.partner("p1")

        def taken(signed_at):
            found = partner_keys(store, registered, signed_at=signed_at).keys
            return {signing.public_key_bytes(k) for k in found}

        assert taken(datetime(2026, 1, 1, tzinfo=UTC)) == set(keys)
        assert taken(datetime(2026, 6, 1, tzinfo=UTC)) == {keys[1], keys[2]}
        assert taken(datetime(2026, 12, 1, tzinfo=UTC)) == {keys[2]}
        assert taken(None) == set(keys)

    def test_a_database_from_before_keeps_its_last_rotation(self, tmp_path):
        store, keys = self.rotated_twice(tmp_path)
        store.close()
        db = sqlite3.connect(tmp_path / "c.db")
        db.execute("DROP TABLE retired_keys")
        db.commit()
        db.close()
        assert Store(tmp_path / "c.db").retired_keys("p1") == [(keys[1], self.T2)]
