"""The coordinator's audit log: an append-only, hash-chained, signed table in SQLite.

The table `audit_events` lives in the coordinator's database file next to
tables owned by other code; this module creates only its own table, index and
triggers. Appends run in `BEGIN IMMEDIATE` transactions, so the server and the
CLI appending from two processes each read the current head and extend it
under SQLite's write lock: the chain never forks. Triggers make UPDATE and
DELETE fail; anyone who drops them and edits rows anyway is caught by
`verify`, which recomputes every hash and signature (`kruispunt.audit`).

A privacy officer verifies with the public key alone: `verify_database`
opens the file read-only. The `details` of the events that a node's
cross-check reads must carry the keys in
`kruispunt.audit.COORDINATOR_REQUIRED_DETAILS`; `append` refuses them
otherwise.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import signing
from kruispunt.audit import (
    COORDINATOR_REQUIRED_DETAILS,
    FIELDS,
    AuditEvent,
    ChainedLog,
    ChainHead,
    Clock,
    VerifyReport,
    event_from_dict,
    verify_events,
)
from kruispunt.errors import AuditChainBroken, ConfigError

if TYPE_CHECKING:
    from coordinator.config import CoordinatorConfig

__all__ = ["TABLE", "CoordinatorAudit", "open_audit", "read_database", "verify_database"]

TABLE: Final = "audit_events"

# How long an append waits for another process's write transaction before failing.
_BUSY_TIMEOUT_S: Final = 30.0

_SCHEMA: Final = (
    f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        seq          INTEGER PRIMARY KEY CHECK (seq >= 1),
        time         TEXT NOT NULL,
        event        TEXT NOT NULL,
        actor        TEXT NOT NULL,
        on_behalf_of TEXT NOT NULL,
        access_point TEXT NOT NULL,
        action       TEXT NOT NULL,
        basis        TEXT NOT NULL,
        round_id     TEXT NOT NULL,
        details      TEXT NOT NULL,
        prev_hash    TEXT NOT NULL,
        hash         TEXT NOT NULL UNIQUE,
        key_id       TEXT NOT NULL,
        signature    TEXT NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS {TABLE}_round ON {TABLE} (round_id, seq)",
    # Every append looks up the newest key handover (`_check_key`): one index probe.
    f"CREATE INDEX IF NOT EXISTS {TABLE}_event ON {TABLE} (event, seq)",
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS {TABLE}_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only'); END
    """,
)
# Spelled out (not built from FIELDS) so each statement is a constant; tests check the order.
_INSERT: Final = (
    "INSERT INTO audit_events (seq, time, event, actor, on_behalf_of, access_point, action, "
    "basis, round_id, details, prev_hash, hash, key_id, signature) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL: Final = (
    "SELECT seq, time, event, actor, on_behalf_of, access_point, action, basis, round_id, "
    "details, prev_hash, hash, key_id, signature FROM audit_events ORDER BY seq"
)
_SELECT_ROUND: Final = (
    "SELECT seq, time, event, actor, on_behalf_of, access_point, action, basis, round_id, "
    "details, prev_hash, hash, key_id, signature FROM audit_events WHERE round_id = ? "
    "ORDER BY seq"
)
_SELECT_HEAD: Final = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"
_SELECT_LAST_HANDOVER: Final = (
    "SELECT seq, details FROM audit_events WHERE event = 'audit.key_rotated' "
    "ORDER BY seq DESC LIMIT 1"
)


class _UnreadableRowError(Exception):
    """A stored row cannot be decoded into an event."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def _row_to_event(row: tuple[object, ...]) -> AuditEvent:
    data = dict(zip(FIELDS, row, strict=True))
    seq = data["seq"]
    seq_int = seq if isinstance(seq, int) else -1
    details = data["details"]
    if not isinstance(details, str):
        raise _UnreadableRowError(seq_int, f"row {seq}: details is not text")
    try:
        data["details"] = json.loads(details)
    except json.JSONDecodeError:
        raise _UnreadableRowError(seq_int, f"row {seq}: details is not JSON") from None
    try:
        return event_from_dict(data)
    except ValueError as exc:
        raise _UnreadableRowError(seq_int, f"row {seq}: {exc}") from None


def _event_to_row(event: AuditEvent) -> tuple[object, ...]:
    values: list[object] = []
    for name in FIELDS:
        value = getattr(event, name)
        if name == "details":
            value = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        values.append(value)
    return tuple(values)


def _select(round_id: str | None) -> tuple[str, tuple[str, ...]]:
    if round_id is None:
        return _SELECT_ALL, ()
    return _SELECT_ROUND, (round_id,)


def _verify_rows(
    conn: sqlite3.Connection,
    public_key: Ed25519PublicKey,
    expected_head: ChainHead | None,
) -> VerifyReport:
    """Verify the whole table read through `conn`; an undecodable row counts as tampering."""
    unreadable: list[_UnreadableRowError] = []

    def rows() -> Iterator[AuditEvent]:
        sql, params = _select(None)
        for row in conn.execute(sql, params):
            try:
                yield _row_to_event(row)
            except _UnreadableRowError as exc:
                unreadable.append(exc)
                return

    report = verify_events(rows(), public_key, expected_head=expected_head)
    if unreadable:
        bad = unreadable[0]
        if report.ok or (report.first_bad_seq or 0) >= bad.seq:
            return VerifyReport(False, report.count, bad.seq, bad.reason, report.head)
    return report


def _table_exists(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
    ).fetchone()
    return row is not None


def verify_database(
    db_path: Path, public_key: Ed25519PublicKey, *, expected_head: ChainHead | None = None
) -> VerifyReport:
    """Verify the audit table of a coordinator database, opened read-only, with a public key.

    Raises ConfigError if the file cannot be opened; a database without the audit
    table verifies as not ok.
    """
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error:
        raise ConfigError(f"{db_path}: cannot open the coordinator database read-only") from None
    try:
        try:
            if not _table_exists(conn):
                return VerifyReport(False, 0, None, f"no {TABLE} table in this database")
            return _verify_rows(conn, public_key, expected_head)
        except sqlite3.DatabaseError:
            raise ConfigError(f"{db_path}: not a readable coordinator database") from None
    finally:
        conn.close()


def read_database(db_path: Path, round_id: str | None = None) -> list[AuditEvent]:
    """The stored events (optionally one round's), read-only and without any key.

    What `psi-coordinator audit export` writes: public data only. Raises ConfigError
    if the file cannot be opened or has no audit table, AuditChainBroken if a row
    cannot be decoded at all.
    """
    uri = Path(db_path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
    except sqlite3.Error:
        raise ConfigError(f"{db_path}: cannot open the coordinator database read-only") from None
    try:
        try:
            if not _table_exists(conn):
                raise ConfigError(f"{db_path}: no {TABLE} table in this database")
            sql, params = _select(round_id)
            rows = conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError:
            raise ConfigError(f"{db_path}: not a readable coordinator database") from None
    finally:
        conn.close()
    try:
        return [_row_to_event(row) for row in rows]
    except _UnreadableRowError as exc:
        raise AuditChainBroken(exc.reason, exc.seq) from None


def open_audit(config: CoordinatorConfig, *, now: Clock | None = None) -> CoordinatorAudit:
    """The coordinator's audit log, signing with its audit key (never the manifest key,
    unless the directory predates the split: see `CoordinatorConfig.audit_key_separate`).

    ConfigError naming the file if the key cannot be read.
    """
    return CoordinatorAudit(
        config.database,
        signing.load_signing_key(config.audit_key),
        now=now,
        key_path=config.audit_key,
    )


class CoordinatorAudit(ChainedLog):
    """The coordinator's chained audit table in the SQLite file at `db_path`.

    Thread-safe (one connection behind a lock) and safe across processes
    (`BEGIN IMMEDIATE` around read-head-then-insert). `now` injects the clock.
    Before every append it checks that it holds the key the newest handover names
    (another process may have rotated it: `coordinator.audit_rotation`); with
    `key_path` it then reloads the key from there, else it refuses to append.
    """

    def __init__(
        self,
        db_path: Path,
        signing_key: Ed25519PrivateKey,
        *,
        now: Clock | None = None,
        key_path: Path | None = None,
    ) -> None:
        super().__init__(signing_key, now, key_path)
        self._path = Path(db_path)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self._path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
            )
        except sqlite3.Error:
            raise ConfigError(f"{self._path}: cannot open the coordinator database") from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # The audit trail must survive a power cut once append() has returned.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    self._conn.execute(statement)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError:
            self._conn.close()
            raise ConfigError(f"{self._path}: not a usable coordinator database") from None

    required_details = COORDINATOR_REQUIRED_DETAILS

    def _append_sealed(self, build: Callable[[ChainHead | None], AuditEvent]) -> AuditEvent:
        # BEGIN IMMEDIATE: another process (server or CLI) cannot read the same head.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._check_key()
                row = self._conn.execute(_SELECT_HEAD).fetchone()
                sealed = build(None if row is None else ChainHead(int(row[0]), str(row[1])))
                self._conn.execute(_INSERT, _event_to_row(sealed))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return sealed

    def _check_key(self) -> None:
        """Hold the key the newest handover names, reloading it from `key_path` if need be.

        An event signed by a key the chain has handed over from would be refused by
        every verifier: better no event than one that breaks the chain.
        """
        row = self._conn.execute(_SELECT_LAST_HANDOVER).fetchone()
        if row is None:
            return
        try:
            wanted = str(json.loads(str(row[1]))["new_key_id"])
        except (ValueError, KeyError, TypeError):
            raise AuditChainBroken("key handover details do not parse", int(row[0])) from None
        if self.follow_key(wanted):
            return
        raise ConfigError(
            f"{self._path}: the audit log was handed over to key {wanted} at event {row[0]}, "
            f"but this process holds key {signing.key_id(self.public_key)}"
            + (f" and {self._key_path} another" if self._key_path is not None else "")
            + "; finish the rotation with `psi-coordinator audit rotate-key` and restart"
        )

    def events(self, round_id: str | None = None) -> list[AuditEvent]:
        """Return the stored events in chain order, optionally only one round's.

        Raises AuditChainBroken if a stored row cannot be decoded at all.
        """
        sql, params = _select(round_id)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        try:
            return [_row_to_event(row) for row in rows]
        except _UnreadableRowError as exc:
            raise AuditChainBroken(exc.reason, exc.seq) from None

    def head(self) -> ChainHead | None:
        """The last event's seq and hash (keep it elsewhere to detect a truncated tail)."""
        with self._lock:
            row = self._conn.execute(_SELECT_HEAD).fetchone()
        return None if row is None else ChainHead(int(row[0]), str(row[1]))

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        expected_head: ChainHead | None = None,
    ) -> VerifyReport:
        """Recompute the whole chain and every signature (by default under our own key)."""
        key = public_key if public_key is not None else self.public_key
        with self._lock:
            if not _table_exists(self._conn):
                return VerifyReport(False, 0, None, f"no {TABLE} table in this database")
            # One read transaction, so a concurrent append cannot land mid-verification.
            self._conn.execute("BEGIN")
            try:
                return _verify_rows(self._conn, key, expected_head)
            finally:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
