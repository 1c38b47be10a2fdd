"""The partners table keeps each partner's agreement key; an older database gains the column."""

from __future__ import annotations

import sqlite3

from coordinator.store import Partner, Store

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
