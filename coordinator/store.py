"""The coordinator's SQLite database: partners, operators, purposes, rounds, aggregates.

Only what may persist is stored: registry data (partners, and the operators' personal
certificates the admin service admits), purposes, signed manifests,
consents and deletion receipts (no identifiers in any), and per-round aggregates (set sizes,
flagged counts, the overlap histogram, phase timings). Tags never reach it.
The audit log lives in the same file, in its own table (`coordinator.audit`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kruispunt.errors import ConfigError
from kruispunt.purpose import Purpose

SCHEMA = """
CREATE TABLE IF NOT EXISTS partners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    cert_fingerprint TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    signing_key BLOB NOT NULL,
    added_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    agreement_key BLOB NOT NULL DEFAULT X''
);
CREATE TABLE IF NOT EXISTS purposes (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS purpose_versions (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE TABLE IF NOT EXISTS purpose_retirements (
    id TEXT PRIMARY KEY,
    retired_at TEXT NOT NULL,
    retired_by TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    id TEXT PRIMARY KEY,
    purpose_id TEXT NOT NULL,
    purpose_version INTEGER NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    phase TEXT NOT NULL DEFAULT '',
    progress TEXT NOT NULL DEFAULT '',
    initiated_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    manifest BLOB NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS rounds_by_purpose ON rounds (purpose_id, created_at);
CREATE TABLE IF NOT EXISTS consents (
    round_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    granted INTEGER NOT NULL,
    reason TEXT NOT NULL,
    consent BLOB NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (round_id, partner_id)
);
CREATE TABLE IF NOT EXISTS operators (
    cert_fingerprint TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    not_after TEXT NOT NULL,
    added_at TEXT NOT NULL,
    added_by TEXT NOT NULL,
    removed_at TEXT,
    removed_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS operators_by_name ON operators (name, added_at);
CREATE TABLE IF NOT EXISTS denied_certificates (
    cert_fingerprint TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    reason TEXT NOT NULL,
    denied_at TEXT NOT NULL,
    denied_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deletion_receipts (
    round_id TEXT NOT NULL,
    partner_id TEXT NOT NULL,
    node_seq INTEGER NOT NULL,
    deleted_at TEXT NOT NULL,
    receipt BLOB NOT NULL,
    signature BLOB NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (round_id, partner_id)
);
CREATE TABLE IF NOT EXISTS key_overlaps (
    -- A signing key replaced by a rotation, still verifying until valid_until (ISO UTC):
    -- holder is a partner id, or '' for the coordinator's manifest key.
    holder TEXT PRIMARY KEY,
    previous_key BLOB NOT NULL,
    valid_until TEXT NOT NULL,
    rotated_at TEXT NOT NULL,
    rotated_by TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS retired_keys (
    -- Every signing key a rotation replaced, kept for good (key_overlaps keeps only the
    -- last): a report of an old round verifies what was signed then. holder as there.
    holder TEXT NOT NULL,
    key BLOB NOT NULL,
    valid_until TEXT NOT NULL,
    rotated_at TEXT NOT NULL,
    PRIMARY KEY (holder, key)
);
"""

#: `key_overlaps.holder` of the coordinator's manifest key (no partner id is empty).
COORDINATOR_HOLDER = ""

# The columns _partner reads, in its order. agreement_key came later (the roster): a
# database made before it has no such column until a writable Store adds it, and a
# read-only store reads it as empty.
_SELECT_PARTNERS = (
    "SELECT id, name, address, cert_fingerprint, cert_pem, signing_key, added_at, active, "
    "agreement_key FROM partners"
)
_SELECT_PARTNERS_BEFORE_ROSTER = (
    "SELECT id, name, address, cert_fingerprint, cert_pem, signing_key, added_at, active, "
    "X'' FROM partners"
)
_ADD_AGREEMENT_COLUMN = "ALTER TABLE partners ADD COLUMN agreement_key BLOB NOT NULL DEFAULT X''"

# The columns _round_row reads, in its order.
_SELECT_ROUNDS = (
    "SELECT id, purpose_id, purpose_version, state, reason, phase, progress, "
    "initiated_by, created_at, finished_at, manifest, summary FROM rounds"
)

_SELECT_OPERATORS = (
    "SELECT name, cert_fingerprint, cert_pem, not_after, added_at, added_by, removed_at, "
    "removed_by FROM operators"
)

_SELECT_DELETIONS = (
    "SELECT round_id, partner_id, node_seq, deleted_at, receipt, signature, received_at "
    "FROM deletion_receipts"
)

# Round states; "running" rounds found at start-up were interrupted and become "aborted".
RUNNING, COMPLETED, FAILED, REFUSED, ABORTED = (
    "running",
    "completed",
    "failed",
    "refused",
    "aborted",
)


@dataclass(frozen=True)
class Partner:
    """A registered partner node."""

    id: str
    name: str
    address: str
    cert_fingerprint: str
    cert_pem: str
    signing_key: bytes
    # The partner's raw X25519 public key (tag-key shares are sealed to it); empty for a
    # partner registered before the roster existed, which a roster export refuses.
    agreement_key: bytes
    added_at: str
    active: bool


@dataclass(frozen=True)
class OperatorCert:
    """One personal operator certificate the coordinator issued, and whether it still counts.

    A person may hold several over time (renewals); removing the operator ends them all.
    """

    name: str
    cert_fingerprint: str
    cert_pem: str
    not_after: str
    added_at: str
    added_by: str
    removed_at: str | None
    removed_by: str

    @property
    def active(self) -> bool:
        return self.removed_at is None


@dataclass(frozen=True)
class PurposeChange:
    """What `put_purpose` did: the version stored and the fields that changed.

    `previous` is None for a new purpose; for an identical re-add `stored` is
    `previous` and `changes` is empty: nothing was written.
    """

    stored: Purpose
    previous: Purpose | None
    changes: Mapping[str, tuple[Any, Any]]

    @property
    def unchanged(self) -> bool:
        return self.previous is self.stored


@dataclass(frozen=True)
class PurposeVersion:
    """One registered version of a purpose: the definition, when and by whom."""

    purpose: Purpose
    changed_at: str
    #: Empty for the version that was current when the history began.
    changed_by: str


@dataclass(frozen=True)
class Retirement:
    """A purpose taken out of use: no round of it runs again."""

    retired_at: str
    retired_by: str
    reason: str


@dataclass(frozen=True)
class DeletionRow:
    """A partner's signed deletion receipt for one round, as stored."""

    round_id: str
    partner_id: str
    node_seq: int
    deleted_at: str
    receipt: bytes
    signature: bytes
    received_at: str


@dataclass(frozen=True)
class RoundRow:
    """One round as stored."""

    id: str
    purpose_id: str
    purpose_version: int
    state: str
    reason: str
    phase: str
    progress: str
    initiated_by: str
    created_at: str
    finished_at: str | None
    manifest: bytes
    summary: dict[str, Any]


class Store:
    """Thread-safe access to the coordinator database (WAL, one connection, one lock)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        """Open (and create the schema of) the database; `readonly` for auditors and reports."""
        if not path.parent.is_dir():
            raise ConfigError(f"{path.parent}: coordinator directory does not exist")
        self.path = path
        self._lock = threading.RLock()
        if readonly:
            if not path.exists():
                raise ConfigError(f"{path}: no coordinator database")
            self._db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA busy_timeout=10000")
            self._select_partners = self._partner_select()
            return
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._migrate()
        self._select_partners = self._partner_select()

    def _partner_columns(self) -> set[str]:
        return {row[1] for row in self._db.execute("PRAGMA table_info(partners)")}

    def _migrate(self) -> None:
        """Bring a database made by an older version up to this schema (columns only)."""
        with self._tx() as db:
            if "agreement_key" not in self._partner_columns():
                # Existing partners get an empty key: `roster export` names them and the fix.
                db.execute(_ADD_AGREEMENT_COLUMN)
            # Purposes registered before the history was kept: their current version opens it.
            db.execute(
                "INSERT OR IGNORE INTO purpose_versions "
                "SELECT id, version, body, updated_at, '' FROM purposes"
            )
            # Rotations before every retired key was kept: the last one's key is known.
            db.execute(
                "INSERT OR IGNORE INTO retired_keys "
                "SELECT holder, previous_key, valid_until, rotated_at FROM key_overlaps"
            )

    def _partner_select(self) -> str:
        # A read-only store cannot migrate: it reads a missing agreement_key as empty.
        if "agreement_key" in self._partner_columns():
            return _SELECT_PARTNERS
        return _SELECT_PARTNERS_BEFORE_ROSTER

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- partners ----------------------------------------------------------------------

    def add_partner(self, partner: Partner) -> None:
        with self._tx() as db:
            if db.execute("SELECT 1 FROM partners WHERE id=?", (partner.id,)).fetchone():
                raise ConfigError(f"partner {partner.id!r} is already registered")
            db.execute(
                "INSERT INTO partners (id, name, address, cert_fingerprint, cert_pem, "
                "signing_key, added_at, active, agreement_key) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    partner.id,
                    partner.name,
                    partner.address,
                    partner.cert_fingerprint,
                    partner.cert_pem,
                    partner.signing_key,
                    partner.added_at,
                    int(partner.active),
                    partner.agreement_key,
                ),
            )

    def update_partner_address(self, partner_id: str, address: str) -> None:
        with self._tx() as db:
            cur = db.execute("UPDATE partners SET address=? WHERE id=?", (address, partner_id))
            if cur.rowcount != 1:
                raise ConfigError(f"partner {partner_id!r} is not registered")

    def update_partner_cert(self, partner_id: str, cert_pem: str, fingerprint: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE partners SET cert_pem=?, cert_fingerprint=? WHERE id=?",
                (cert_pem, fingerprint, partner_id),
            )

    def partner(self, partner_id: str) -> Partner | None:
        with self._lock:
            row = self._db.execute(self._select_partners + " WHERE id=?", (partner_id,)).fetchone()
        return _partner(row) if row else None

    def partners(self) -> list[Partner]:
        with self._lock:
            rows = self._db.execute(self._select_partners + " ORDER BY id").fetchall()
        return [_partner(r) for r in rows]

    def set_partner_active(self, partner_id: str, active: bool) -> None:
        """Mark a registered partner active or deactivated; ConfigError if not registered."""
        with self._tx() as db:
            cur = db.execute("UPDATE partners SET active=? WHERE id=?", (int(active), partner_id))
            if cur.rowcount != 1:
                raise ConfigError(f"partner {partner_id!r} is not registered")

    def delete_partner(self, partner_id: str) -> None:
        """Take a partner out of the registry (its history stays in rounds and the audit log)."""
        with self._tx() as db:
            cur = db.execute("DELETE FROM partners WHERE id=?", (partner_id,))
            if cur.rowcount != 1:
                raise ConfigError(f"partner {partner_id!r} is not registered")
            db.execute("DELETE FROM key_overlaps WHERE holder=?", (partner_id,))

    def rotate_partner_key(
        self,
        partner_id: str,
        new_key: bytes,
        *,
        valid_until: str,
        rotated_at: str,
        rotated_by: str,
    ) -> bytes:
        """Register `new_key` as the partner's signing key; its old key verifies until
        `valid_until` (replacing an earlier overlap). Returns the old key; ConfigError if
        the partner is not registered."""
        with self._tx() as db:
            row = db.execute(
                "SELECT signing_key FROM partners WHERE id=?", (partner_id,)
            ).fetchone()
            if row is None:
                raise ConfigError(f"partner {partner_id!r} is not registered")
            previous = bytes(row[0])
            db.execute("UPDATE partners SET signing_key=? WHERE id=?", (new_key, partner_id))
            _retire(db, partner_id, previous, valid_until, rotated_at, rotated_by)
        return previous

    def record_key_overlap(
        self,
        holder: str,
        previous_key: bytes,
        *,
        valid_until: str,
        rotated_at: str,
        rotated_by: str,
    ) -> None:
        """Record that `holder`'s previous key verifies until `valid_until` (replaces one)."""
        with self._tx() as db:
            _retire(db, holder, previous_key, valid_until, rotated_at, rotated_by)

    def retired_keys(self, holder: str) -> list[tuple[bytes, str]]:
        """(key, valid until) of every key `holder`'s rotations replaced, oldest first."""
        with self._lock:
            kept = self._has_table("retired_keys")
            rows = (
                self._db.execute(
                    "SELECT key, valid_until FROM retired_keys WHERE holder=? "
                    "ORDER BY rotated_at, valid_until",
                    (holder,),
                ).fetchall()
                if kept
                else []
            )
        if not kept:  # a read-only store of a database made before the history was kept
            overlap = self.key_overlap(holder)
            return [overlap] if overlap is not None else []
        return [(bytes(key), str(until)) for key, until in rows]

    def key_overlap(self, holder: str) -> tuple[bytes, str] | None:
        """(previous key, valid until) of `holder`'s last rotation, or None."""
        with self._lock:
            if not self._has_table("key_overlaps"):
                return None  # a read-only store of a database made before rotations
            row = self._db.execute(
                "SELECT previous_key, valid_until FROM key_overlaps WHERE holder=?", (holder,)
            ).fetchone()
        return (bytes(row[0]), str(row[1])) if row else None

    # -- the deny-list -----------------------------------------------------------------

    def deny_certificate(
        self, fingerprint: str, identity: str, reason: str, denied_at: str, denied_by: str
    ) -> None:
        """Deny the certificate `fingerprint` for good; denying it again keeps the first entry."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO denied_certificates (cert_fingerprint, identity, reason, "
                "denied_at, denied_by) VALUES (?,?,?,?,?)",
                (fingerprint, identity, reason, denied_at, denied_by),
            )

    def denied_certificate(self, fingerprint: str) -> tuple[str, str] | None:
        """(identity, reason) if the certificate `fingerprint` is denied, else None."""
        with self._lock:
            if not self._has_table("denied_certificates"):
                return None  # a read-only store of a database made before the deny-list
            row = self._db.execute(
                "SELECT identity, reason FROM denied_certificates WHERE cert_fingerprint=?",
                (fingerprint,),
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def denied_certificates(self) -> list[tuple[str, str, str, str, str]]:
        """Every denied certificate: (fingerprint, identity, reason, denied_at, denied_by)."""
        with self._lock:
            if not self._has_table("denied_certificates"):
                return []
            rows = self._db.execute(
                "SELECT cert_fingerprint, identity, reason, denied_at, denied_by "
                "FROM denied_certificates ORDER BY denied_at, cert_fingerprint"
            ).fetchall()
        return [(str(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]

    # -- operators ---------------------------------------------------------------------

    def add_operator_cert(self, cert: OperatorCert) -> None:
        """Register an operator certificate (a new operator, or a renewal of one)."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO operators (cert_fingerprint, name, cert_pem, not_after, added_at, "
                "added_by, removed_at, removed_by) VALUES (?,?,?,?,?,?,?,?)",
                (
                    cert.cert_fingerprint,
                    cert.name,
                    cert.cert_pem,
                    cert.not_after,
                    cert.added_at,
                    cert.added_by,
                    cert.removed_at,
                    cert.removed_by,
                ),
            )

    def remove_operator(self, name: str, removed_at: str, removed_by: str) -> int:
        """End every active certificate of operator `name`; returns how many there were."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE operators SET removed_at=?, removed_by=? "
                "WHERE name=? AND removed_at IS NULL",
                (removed_at, removed_by, name),
            )
            return int(cur.rowcount)

    def operator_certs(self, name: str | None = None) -> list[OperatorCert]:
        """Registered operator certificates (of `name`, or all), oldest first."""
        query = _SELECT_OPERATORS
        args: tuple[str, ...] = ()
        if name is not None:
            query += " WHERE name=?"
            args = (name,)
        with self._lock:
            if not self._has_table("operators"):  # a read-only store on an older database
                return []
            rows = self._db.execute(query + " ORDER BY name, added_at", args).fetchall()
        return [_operator(r) for r in rows]

    def operator_cert(self, fingerprint: str) -> OperatorCert | None:
        """The registered operator certificate with this SHA-256 fingerprint, if any."""
        with self._lock:
            if not self._has_table("operators"):
                return None
            row = self._db.execute(
                _SELECT_OPERATORS + " WHERE cert_fingerprint=?", (fingerprint,)
            ).fetchone()
        return _operator(row) if row else None

    def _has_table(self, name: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)
        ).fetchone()
        return row is not None

    # -- purposes ----------------------------------------------------------------------

    def put_purpose(self, purpose: Purpose, now: str, actor: str) -> PurposeChange:
        """Store a purpose as its next version, unless it is the current one unchanged.

        ConfigError when the purpose was retired: its id stays retired, so that
        the audit log's rounds of it keep one meaning.
        """
        with self._tx() as db:
            retired = db.execute(
                "SELECT retired_at, retired_by FROM purpose_retirements WHERE id=?", (purpose.id,)
            ).fetchone()
            if retired:
                raise ConfigError(
                    f"purpose {purpose.id!r} was retired on {retired[0][:10]} by {retired[1]}; "
                    "a retired id is not used again: register the new purpose under a new id"
                )
            row = db.execute("SELECT body FROM purposes WHERE id=?", (purpose.id,)).fetchone()
            previous = Purpose.from_dict(json.loads(row[0])) if row else None
            if previous is not None and not previous.differences(purpose):
                return PurposeChange(previous, previous, {})
            stored = purpose.with_version(previous.version + 1 if previous else 1)
            body = json.dumps(stored.to_dict(), sort_keys=True)
            db.execute(
                "INSERT INTO purposes VALUES (?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                "version=excluded.version, body=excluded.body, updated_at=excluded.updated_at",
                (stored.id, stored.version, body, now),
            )
            db.execute(
                "INSERT INTO purpose_versions VALUES (?,?,?,?,?)",
                (stored.id, stored.version, body, now, actor),
            )
        changes = previous.differences(stored) if previous else {}
        return PurposeChange(stored, previous, changes)

    def purpose_history(self, purpose_id: str) -> list[PurposeVersion]:
        """Every registered version of a purpose, oldest first (empty when unknown)."""
        with self._lock:
            if self._has_table("purpose_versions"):
                query = "SELECT body, changed_at, changed_by FROM purpose_versions WHERE id=?"
                query += " ORDER BY version"
            else:  # read-only, on a database from before the history: the current version
                query = "SELECT body, updated_at, '' FROM purposes WHERE id=?"
            rows = self._db.execute(query, (purpose_id,)).fetchall()
        return [PurposeVersion(Purpose.from_dict(json.loads(b)), at, by) for b, at, by in rows]

    def retire_purpose(self, purpose_id: str, now: str, actor: str, reason: str) -> Purpose:
        """Retire a purpose: no round of it runs again. ConfigError when unknown or retired."""
        with self._tx() as db:
            row = db.execute("SELECT body FROM purposes WHERE id=?", (purpose_id,)).fetchone()
            if row is None:
                raise ConfigError(
                    f"unknown purpose {purpose_id!r} (see: psi-coordinator purpose list)"
                )
            if db.execute("SELECT 1 FROM purpose_retirements WHERE id=?", (purpose_id,)).fetchone():
                raise ConfigError(f"purpose {purpose_id!r} is already retired")
            db.execute(
                "INSERT INTO purpose_retirements VALUES (?,?,?,?)",
                (purpose_id, now, actor, reason),
            )
        return Purpose.from_dict(json.loads(row[0]))

    def retirement(self, purpose_id: str) -> Retirement | None:
        """When, by whom and why a purpose was retired; None while it is in use."""
        with self._lock:
            if not self._has_table("purpose_retirements"):
                return None
            row = self._db.execute(
                "SELECT retired_at, retired_by, reason FROM purpose_retirements WHERE id=?",
                (purpose_id,),
            ).fetchone()
        return Retirement(*row) if row else None

    def purpose(self, purpose_id: str) -> Purpose | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM purposes WHERE id=?", (purpose_id,)).fetchone()
        return Purpose.from_dict(json.loads(row[0])) if row else None

    def purposes(self) -> list[Purpose]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM purposes ORDER BY id").fetchall()
        return [Purpose.from_dict(json.loads(r[0])) for r in rows]

    # -- rounds ------------------------------------------------------------------------

    def create_round(
        self, round_id: str, purpose: Purpose, initiated_by: str, created_at: str, manifest: bytes
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO rounds (id, purpose_id, purpose_version, state, initiated_by, "
                "created_at, manifest) VALUES (?,?,?,?,?,?,?)",
                (
                    round_id,
                    purpose.id,
                    purpose.version,
                    RUNNING,
                    initiated_by,
                    created_at,
                    manifest,
                ),
            )

    def set_progress(self, round_id: str, phase: str, progress: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE rounds SET phase=?, progress=? WHERE id=?", (phase, progress, round_id)
            )

    def finish_round(
        self, round_id: str, state: str, reason: str, finished_at: str, summary: dict[str, Any]
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE rounds SET state=?, reason=?, finished_at=?, summary=? WHERE id=?",
                (state, reason, finished_at, json.dumps(summary, sort_keys=True), round_id),
            )

    def record_consent(
        self,
        round_id: str,
        partner_id: str,
        granted: bool,
        reason: str,
        consent: bytes,
        signature: bytes,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO consents VALUES (?,?,?,?,?,?)",
                (round_id, partner_id, int(granted), reason, consent, signature),
            )

    def consents(self, round_id: str) -> list[tuple[str, bool, str, bytes, bytes]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT partner_id, granted, reason, consent, signature FROM consents "
                "WHERE round_id=? ORDER BY partner_id",
                (round_id,),
            ).fetchall()
        return [(r[0], bool(r[1]), r[2], r[3], r[4]) for r in rows]

    # -- deletion receipts ---------------------------------------------------------------

    def record_deletion(
        self,
        round_id: str,
        partner_id: str,
        node_seq: int,
        deleted_at: str,
        receipt: bytes,
        signature: bytes,
        received_at: str,
    ) -> bool:
        """Keep a partner's signed deletion receipt; False if one for the round is kept."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO deletion_receipts VALUES (?,?,?,?,?,?,?)",
                (round_id, partner_id, node_seq, deleted_at, receipt, signature, received_at),
            )
            return cur.rowcount == 1

    def deletion(self, round_id: str, partner_id: str) -> DeletionRow | None:
        """The deletion receipt a partner gave for a round, if any."""
        rows = [d for d in self.deletions(round_id) if d.partner_id == partner_id]
        return rows[0] if rows else None

    def deletions(self, round_id: str) -> list[DeletionRow]:
        """The deletion receipts of a round, by partner."""
        with self._lock:
            if not self._has_table("deletion_receipts"):  # read-only, older database
                return []
            rows = self._db.execute(
                _SELECT_DELETIONS + " WHERE round_id=? ORDER BY partner_id", (round_id,)
            ).fetchall()
        return [_deletion(r) for r in rows]

    def last_deletion_seq(self, partner_id: str) -> int:
        """The node audit seq of the newest deletion receipt kept from a partner (0: none)."""
        with self._lock:
            if not self._has_table("deletion_receipts"):
                return 0
            row = self._db.execute(
                "SELECT max(node_seq) FROM deletion_receipts WHERE partner_id=?", (partner_id,)
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def round(self, round_id: str) -> RoundRow | None:
        with self._lock:
            row = self._db.execute(
                _SELECT_ROUNDS + " WHERE id=?",
                (round_id,),
            ).fetchone()
        return _round_row(row) if row else None

    def rounds(self, *, purpose_id: str | None = None, limit: int = 50) -> list[RoundRow]:
        query = _SELECT_ROUNDS
        args: tuple[Any, ...] = ()
        if purpose_id:
            query += " WHERE purpose_id=?"
            args = (purpose_id,)
        query += " ORDER BY created_at DESC, id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [_round_row(r) for r in rows]

    def running_rounds(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT id FROM rounds WHERE state=?", (RUNNING,)).fetchall()
        return [r[0] for r in rows]


def _partner(row: tuple[Any, ...]) -> Partner:
    return Partner(
        id=row[0],
        name=row[1],
        address=row[2],
        cert_fingerprint=row[3],
        cert_pem=row[4],
        signing_key=row[5],
        added_at=row[6],
        active=bool(row[7]),
        agreement_key=bytes(row[8]),
    )


def _operator(row: tuple[Any, ...]) -> OperatorCert:
    return OperatorCert(
        name=row[0],
        cert_fingerprint=row[1],
        cert_pem=row[2],
        not_after=row[3],
        added_at=row[4],
        added_by=row[5],
        removed_at=row[6],
        removed_by=row[7],
    )


def _deletion(row: tuple[Any, ...]) -> DeletionRow:
    return DeletionRow(
        round_id=row[0],
        partner_id=row[1],
        node_seq=int(row[2]),
        deleted_at=row[3],
        receipt=bytes(row[4]),
        signature=bytes(row[5]),
        received_at=row[6],
    )


def _round_row(row: tuple[Any, ...]) -> RoundRow:
    return RoundRow(
        id=row[0],
        purpose_id=row[1],
        purpose_version=row[2],
        state=row[3],
        reason=row[4],
        phase=row[5],
        progress=row[6],
        initiated_by=row[7],
        created_at=row[8],
        finished_at=row[9],
        manifest=row[10],
        summary=json.loads(row[11]),
    )


def _retire(
    db: sqlite3.Connection,
    holder: str,
    previous_key: bytes,
    valid_until: str,
    rotated_at: str,
    rotated_by: str,
) -> None:
    """A rotation of `holder`'s key: the overlap of the key it replaced, and its record."""
    db.execute(
        "INSERT OR REPLACE INTO key_overlaps (holder, previous_key, valid_until, "
        "rotated_at, rotated_by) VALUES (?,?,?,?,?)",
        (holder, previous_key, valid_until, rotated_at, rotated_by),
    )
    db.execute(
        "INSERT OR IGNORE INTO retired_keys (holder, key, valid_until, rotated_at) "
        "VALUES (?,?,?,?)",
        (holder, previous_key, valid_until, rotated_at),
    )
