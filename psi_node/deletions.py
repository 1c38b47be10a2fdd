"""Deleting results at the end of retention, and the signed receipts that prove it.

A purge deletes each round's result files past their `delete_after` date, logs
`results.deleted` in the node's audit log (counts and digests, never a record) and
signs a deletion receipt (`kruispunt.deletion`) whose node audit head is that event.
Receipts are kept in the node's state folder, one JSON line each, and handed to the
coordinator at its next contact (`Deletions`, asking for those after the newest it
holds). A node that has deleted nothing has nothing to hand over.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import pki, signing
from kruispunt.deletion import Deletion, sign_deletion
from kruispunt.errors import ConfigError
from kruispunt.manifest import is_round_id
from kruispunt.v1 import node_pb2
from psi_node.audit import NodeAudit
from psi_node.config import NodeConfig
from psi_node.results import expired_results, result_digest

__all__ = [
    "RECEIPTS_FILE",
    "ReceiptBook",
    "node_network",
    "purge_expired_results",
    "sign_missing_receipts",
]

log = structlog.get_logger("psi_node.deletions")

#: The file in the node's state folder that keeps its signed deletion receipts.
RECEIPTS_FILE: Final = "deletion-receipts.jsonl"
RETENTION_ENDED: Final = "retention period ended"
PURGE_LOCK: Final = "purge.lock"


class ReceiptBook:
    """The node's signed deletion receipts, one JSON line each, numbered by audit seq."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / RECEIPTS_FILE

    def keep(self, seq: int, signed: node_pb2.SignedDeletionReceipt) -> None:
        """Append one receipt durably (0600; a second process waits on the file lock)."""
        line = json.dumps(
            {"seq": seq, "receipt": signed.receipt.hex(), "signature": signed.signature.hex()},
            sort_keys=True,
        )
        with self._locked(os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            os.write(fd, (line + "\n").encode("ascii"))
            os.fsync(fd)

    def numbers(self) -> set[int]:
        """The numbers of every receipt kept."""
        return {self._number(raw, n) for n, raw in enumerate(self._lines(), 1)}

    def after(self, seq: int) -> list[node_pb2.SignedDeletionReceipt]:
        """The receipts numbered above `seq`, oldest first; ConfigError names a bad line."""
        out: list[tuple[int, node_pb2.SignedDeletionReceipt]] = []
        for number, raw in enumerate(self._lines(), 1):
            n = self._number(raw, number)
            if n <= seq:
                continue
            try:
                item = json.loads(raw)
                signed = node_pb2.SignedDeletionReceipt(
                    receipt=bytes.fromhex(item["receipt"]),
                    signature=bytes.fromhex(item["signature"]),
                )
            except (ValueError, KeyError, TypeError):
                raise self._damaged(number) from None
            out.append((n, signed))
        return [signed for _n, signed in sorted(out, key=lambda item: item[0])]

    def _lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._locked(os.O_RDONLY) as fd:
            data = b""
            while chunk := os.read(fd, 1 << 16):
                data += chunk
        return data.decode("utf-8", "replace").splitlines()

    def _number(self, raw: str, line: int) -> int:
        try:
            item = json.loads(raw)
            return int(item["seq"])
        except (ValueError, KeyError, TypeError):
            raise self._damaged(line) from None

    def _damaged(self, line: int) -> ConfigError:
        return ConfigError(f"{self.path}, line {line}: not a deletion receipt (edited or torn)")

    @contextmanager
    def _locked(self, flags: int) -> Iterator[int]:
        try:
            fd = os.open(self.path, flags | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot open ({exc.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if flags & os.O_WRONLY else fcntl.LOCK_SH)
            yield fd
        finally:
            os.close(fd)


def node_network(config: NodeConfig) -> str:
    """The network this node belongs to, as its certificate names it."""
    return pki.identity_from_certificate(pki.load_certificate(config.tls_cert)).network


def purge_expired_results(
    config: NodeConfig,
    audit: NodeAudit,
    now: datetime,
    *,
    actor: str,
    signing_key: Ed25519PrivateKey | None = None,
    network: str | None = None,
) -> list[Path]:
    """Delete published results past their retention date; audit and sign each deletion.

    Returns the files deleted. The signing key and the network are read from the node's
    files when not given (the CLI's purge). Purges take turns (a lock file in the state
    folder), so a round deleted by the serving node and the CLI at once gets one receipt.
    """
    if not _expired(config, now):
        return []
    key = signing_key or signing.load_signing_key(config.signing_key)
    name = network or node_network(config)
    with _purging(config.state_dir):
        return _purge(config, audit, now, actor=actor, key=key, network=name)


def _expired(config: NodeConfig, now: datetime) -> list[tuple[str, Path, Path]]:
    return [e for e in expired_results(config.results_dir, now) if is_round_id(e[0])]


@contextmanager
def _purging(state_dir: Path) -> Iterator[None]:
    """One purge at a time (the serving node's and the CLI's): one deletion, one receipt."""
    try:
        fd = os.open(state_dir / PURGE_LOCK, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(f"{state_dir / PURGE_LOCK}: cannot open ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _purge(
    config: NodeConfig,
    audit: NodeAudit,
    now: datetime,
    *,
    actor: str,
    key: Ed25519PrivateKey,
    network: str,
) -> list[Path]:
    """Under the purge lock: delete, audit and sign each expired round's results."""
    book = ReceiptBook(config.state_dir)
    # Receipts carry whole seconds in UTC: the node's log records the very same moment.
    moment = now.astimezone(UTC).replace(microsecond=0)
    deleted: list[Path] = []
    # Listed again under the lock: what another purge deleted meanwhile is gone.
    for round_id, csv_path, meta_path in _expired(config, now):
        try:
            facts = _facts(csv_path, meta_path)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # gone meanwhile (another purge), or damaged: never guessed at
        removed = [path for path in (csv_path, meta_path) if _unlink(path)]
        if not removed:
            continue
        deleted.extend(removed)
        digest, flagged, delete_after = facts
        details = {
            "reason": RETENTION_ENDED,
            "path": str(csv_path),
            "deleted_at": moment.isoformat(),
            "delete_after": delete_after.isoformat(),
            "result_sha256": digest.hex(),
            "flagged_count": flagged,
            "files": len(removed),
        }
        event = audit.append(
            "results.deleted",
            actor=actor,
            on_behalf_of=config.partner_id,
            access_point="node",
            action="D",
            round_id=round_id,
            details=details,
        )
        deletion = Deletion(
            network=network,
            round_id=round_id,
            partner_id=config.partner_id,
            deleted_at=moment,
            delete_after=delete_after,
            result_sha256=digest,
            flagged_count=flagged,
            files=len(removed),
            node_head=event.head,
        )
        book.keep(event.seq, sign_deletion(key, deletion))
        log.info("results deleted", round_id=round_id, reason=RETENTION_ENDED, receipt=event.seq)
    return deleted


def sign_missing_receipts(
    config: NodeConfig, audit: NodeAudit, *, signing_key: Ed25519PrivateKey, network: str
) -> list[int]:
    """Sign the receipt of every logged deletion that has none; returns their numbers.

    A node stopped between logging a deletion and keeping its receipt would otherwise
    never hand it over: the log holds everything the receipt says, and its event is the
    receipt's head. A deletion logged before receipts existed says too little to sign.
    """
    book = ReceiptBook(config.state_dir)
    kept = book.numbers()
    signed: list[int] = []
    for event in audit.events():
        if event.event != "results.deleted" or event.seq in kept:
            continue
        d = event.details
        try:
            deletion = Deletion(
                network=network,
                round_id=event.round_id,
                partner_id=config.partner_id,
                deleted_at=datetime.fromisoformat(d["deleted_at"]).astimezone(UTC),
                delete_after=datetime.fromisoformat(d["delete_after"]).astimezone(UTC),
                result_sha256=bytes.fromhex(d["result_sha256"]),
                flagged_count=int(d["flagged_count"]),
                files=int(d["files"]),
                node_head=event.head,
            )
        except (KeyError, TypeError, ValueError):
            continue
        book.keep(event.seq, sign_deletion(signing_key, deletion))
        log.warning("deletion receipt signed from the audit log", round_id=event.round_id)
        signed.append(event.seq)
    return signed


def _facts(csv_path: Path, meta_path: Path) -> tuple[bytes, int, datetime]:
    """The digest the delivery reported, the flagged count and the deadline of a result.

    A result with records has its digest recomputed from the file (salted, the salt in
    its metadata); a metadata-only result's digest is that of the metadata file itself.
    """
    body = meta_path.read_bytes()
    meta = json.loads(body)
    delete_after = datetime.fromisoformat(meta["delete_after"]).astimezone(UTC)
    flagged = meta.get("flagged_count", 0)
    flagged = flagged if isinstance(flagged, int) and flagged >= 0 else 0
    salt = meta.get("result_digest_salt")
    if csv_path.exists() and isinstance(salt, str):
        return result_digest(csv_path, salt), flagged, delete_after
    stated = meta.get("result_sha256")
    if isinstance(stated, str) and len(stated) == 64:
        # The records file went before the purge: the digest it was delivered under.
        return bytes.fromhex(stated), flagged, delete_after
    return hashlib.sha256(body).digest(), flagged, delete_after


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
