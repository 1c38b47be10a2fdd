"""The base both audit stores extend: signing key, clock, checks and sealing, not storage.

`coordinator.audit` keeps the chain in SQLite, `psi_node.audit` in a JSON Lines
file; each implements `events` and `_append_sealed` and inherits `append` and
`export` from `ChainedLog`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import pki, signing
from kruispunt.audit.codec import ExportFormat, dump_csv, dump_jsonl
from kruispunt.audit.event import (
    GENESIS_HASH,
    AuditEvent,
    ChainHead,
    Clock,
    check_required_details,
    utc_now,
)
from kruispunt.audit.guard import check_no_identifiers
from kruispunt.audit.handover import HANDOVER_EVENT, handover_details
from kruispunt.audit.seal import seal

__all__ = ["ChainedLog"]

log = structlog.get_logger("kruispunt.audit")


class ChainedLog(abc.ABC):
    """What both audit logs share: the signing key, the clock, the checks and the sealing.

    A store (SQLite at the coordinator, JSON Lines at a node) implements `_append_sealed`:
    under its own lock it reads the chain head, calls `build(head)` for the sealed
    successor and stores it durably.
    """

    #: `details` keys each event must carry for the cross-check (per store).
    required_details: Mapping[str, Mapping[str, type]] = {}

    def __init__(
        self, signing_key: Ed25519PrivateKey, now: Clock | None, key_path: Path | None = None
    ) -> None:
        if not isinstance(signing_key, Ed25519PrivateKey):
            raise TypeError("the audit signing key must be an Ed25519 private key")
        self._key = signing_key
        self._now: Clock = now or utc_now
        #: The key file a rotation elsewhere rewrites (`follow_key` reads it); None: none.
        self._key_path = key_path
        self._observers: list[Callable[[AuditEvent], None]] = []

    def add_observer(self, observer: Callable[[AuditEvent], None]) -> None:
        """Call `observer` with every event once it is stored (the metrics count from them).

        An observer that raises is logged and ignored: counting never stops auditing.
        """
        self._observers.append(observer)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The public half of the signing key, for verification."""
        return self._key.public_key()

    def append(
        self,
        event: str,
        *,
        actor: str,
        on_behalf_of: str,
        access_point: str,
        action: str,
        basis: str = "",
        round_id: str = "",
        details: Mapping[str, object] | None = None,
    ) -> AuditEvent:
        """Seal `event` onto the end of the chain, store it durably and return it.

        Raises ValueError/TypeError before anything is written if a field is
        malformed, `details` lacks a required key or anything looks like an
        identifier; the store may raise AuditChainBroken if its head is unreadable.
        """
        details_in: Mapping[str, object] = {} if details is None else details
        check_no_identifiers(details_in)
        check_required_details(event, details_in, self.required_details)

        def build(head: ChainHead | None) -> AuditEvent:
            return seal(
                seq=1 if head is None else head.seq + 1,
                prev_hash=GENESIS_HASH if head is None else head.hash,
                time=self._now(),
                event=event,
                actor=actor,
                on_behalf_of=on_behalf_of,
                access_point=access_point,
                action=action,
                basis=basis,
                round_id=round_id,
                details=details_in,
                signing_key=self._key,
            )

        sealed = self._append_sealed(build)
        for observer in self._observers:
            try:
                observer(sealed)
            except Exception:
                log.exception("audit observer failed", audit_event=sealed.event)
        return sealed

    def follow_key(self, wanted: str) -> bool:
        """Whether this log signs with the key of id `wanted` now: it already does, or the
        key file holds that key after a rotation in another process, and it is adopted."""
        if signing.key_id(self.public_key) == wanted:
            return True
        if self._key_path is not None:
            key = signing.load_signing_key(self._key_path)
            if signing.key_id(key.public_key()) == wanted:
                self.adopt_key(key)
                return True
        return False

    def adopt_key(self, key: Ed25519PrivateKey) -> None:
        """Sign from now on with `key`: the one a handover made elsewhere named (the store
        checks that it is)."""
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError("the audit signing key must be an Ed25519 private key")
        self._key = key

    def rotate_key(
        self,
        new_key: Ed25519PrivateKey,
        *,
        actor: str,
        on_behalf_of: str,
        access_point: str,
        reason: str = "",
    ) -> AuditEvent:
        """Hand the chain over to `new_key` (`kruispunt.audit.handover`); returns the handover.

        The handover is sealed by the current key and endorsed by `new_key`; every later
        event is signed by `new_key`, and verifiers refuse the old key after it.
        """
        if not isinstance(new_key, Ed25519PrivateKey):
            raise TypeError("the new audit signing key must be an Ed25519 private key")
        if new_key.public_key() == self.public_key:
            raise ValueError("the new audit key is the current one")
        check_no_identifiers({"reason": reason})

        def build(head: ChainHead | None) -> AuditEvent:
            prev_hash = GENESIS_HASH if head is None else head.hash
            return seal(
                seq=1 if head is None else head.seq + 1,
                prev_hash=prev_hash,
                time=self._now(),
                event=HANDOVER_EVENT,
                actor=actor,
                on_behalf_of=on_behalf_of,
                access_point=access_point,
                action="U",
                basis="",
                round_id="",
                details=handover_details(prev_hash, self.public_key, new_key, reason),
                signing_key=self._key,
            )

        sealed = self._append_sealed(build)
        self._key = new_key
        return sealed

    def rotate_to_fresh_key(
        self,
        keep_at: Path,
        *,
        actor: str,
        on_behalf_of: str,
        access_point: str,
        reason: str = "",
    ) -> tuple[Ed25519PrivateKey, AuditEvent]:
        """Make a new signing key, keep it at `keep_at` (a new file, mode 0600) and only
        then hand the chain over to it (`rotate_key`): the chain never names a key that
        is not on disk. If the handover is not recorded the file is removed again, so a
        rotation cut short there leaves nothing to finish. Returns (key, handover)."""
        new_key = signing.generate_signing_key()
        pki.write_private_key(keep_at, new_key)
        try:
            handover = self.rotate_key(
                new_key,
                actor=actor,
                on_behalf_of=on_behalf_of,
                access_point=access_point,
                reason=reason,
            )
        except BaseException:
            keep_at.unlink(missing_ok=True)  # nothing recorded: nothing to finish
            raise
        return new_key, handover

    @abc.abstractmethod
    def events(self, round_id: str | None = None) -> list[AuditEvent]:
        """The stored events in chain order, optionally only one round's."""

    def export(
        self, out: TextIO, *, fmt: ExportFormat = "jsonl", round_id: str | None = None
    ) -> int:
        """Write the events (optionally one round's) as JSON Lines or CSV; return the count.

        Every row keeps seq, prev_hash, hash, key_id and signature, so an excerpt
        can still be checked with `verify_excerpt`.
        """
        if fmt not in ("jsonl", "csv"):
            raise ValueError("export format must be 'jsonl' or 'csv'")
        events = self.events(round_id)
        if fmt == "jsonl":
            return dump_jsonl(events, out)
        return dump_csv(events, out)

    @abc.abstractmethod
    def _append_sealed(self, build: Callable[[ChainHead | None], AuditEvent]) -> AuditEvent:
        """Under the store's lock: read the head, store `build(head)`, return it."""
