"""Result files at the node: staged on delivery, published on commit, purged after retention.

Nothing is half-delivered: a round's results are written to a hidden staging
file first and renamed into place only when the coordinator commits the whole
round, so a failure anywhere leaves no result file behind.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc

from kruispunt.errors import KruispuntError

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ResultWriteError(KruispuntError):
    """The results folder cannot be written (full disk, permissions)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


def neutralise(value: str) -> str:
    """Make a cell inert in spreadsheet programs (OWASP CSV injection advice)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


@dataclass(frozen=True)
class StagedResult:
    """Where a round's results wait for commit, and their digest."""

    round_id: str
    staged_csv: Path
    staged_meta: Path
    final_csv: Path
    final_meta: Path
    sha256: bytes
    flagged_count: int


#: A result file's digest is SHA-256(DIGEST_LABEL || salt || file), the salt in its metadata.
DIGEST_LABEL = b"kruispunt/result/v1\x00"
DIGEST_SALT_BYTES = 32


def result_digest(path: Path, salt_hex: str) -> bytes:
    """The digest a node reported for a published result file (check it against the logs)."""
    return hashlib.sha256(DIGEST_LABEL + bytes.fromhex(salt_hex) + path.read_bytes()).digest()


def _paths(results_dir: Path, round_id: str) -> tuple[Path, Path, Path, Path]:
    return (
        results_dir / f".{round_id}.csv.staged",
        results_dir / f".{round_id}.json.staged",
        results_dir / f"{round_id}.csv",
        results_dir / f"{round_id}.json",
    )


def stage_results(
    results_dir: Path,
    round_id: str,
    *,
    columns: Sequence[str],
    rows: Sequence[tuple[str, ...]],
    coholders: Sequence[Sequence[str]] | None,
    metadata: dict[str, object],
) -> StagedResult:
    """Write results to staging files (0600); raise ResultWriteError without leaving any."""
    staged_csv, staged_meta, final_csv, final_meta = _paths(results_dir, round_id)
    # The digest leaves the node (receipt, both audit logs): salted, or a single flagged row
    # would be a dictionary search away from its BSN. The salt stays in the metadata file,
    # so whoever holds the results can still check them against the audit logs.
    salt = os.urandom(DIGEST_SALT_BYTES)
    digest = hashlib.sha256(DIGEST_LABEL + salt)
    try:
        results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _open_private(staged_csv) as fh:
            writer = csv.writer(fh, delimiter=";", lineterminator="\n")
            header = [*columns, "partners"] if coholders is not None else list(columns)
            writer.writerow(header)
            for i, row in enumerate(rows):
                cells = [neutralise(v) for v in row]
                if coholders is not None:
                    cells.append(neutralise(" ".join(coholders[i])))
                writer.writerow(cells)
            fh.flush()
            os.fsync(fh.fileno())
        digest.update(staged_csv.read_bytes())
        with _open_private(staged_meta) as fh:
            json.dump(
                {**metadata, "result_digest_salt": salt.hex(), "result_sha256": digest.hexdigest()},
                fh,
                indent=2,
            )
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _unlink(staged_csv, staged_meta)
        raise ResultWriteError(
            f"cannot write results in {results_dir}: {exc.strerror or exc}"
        ) from None
    return StagedResult(
        round_id, staged_csv, staged_meta, final_csv, final_meta, digest.digest(), len(rows)
    )


def stage_metadata_only(
    results_dir: Path, round_id: str, metadata: dict[str, object], count: int
) -> StagedResult:
    """Stage a result that is only a metadata file (0600), for `publish_metadata_only`.

    What a node writes when it learns no records: the server of a two-party
    round, or a client that may learn only the intersection's size.
    """
    staged_csv, staged_meta, final_csv, final_meta = _paths(results_dir, round_id)
    # A random salt in the file keeps its digest (which leaves the node) unguessable.
    salted = {**metadata, "result_digest_salt": os.urandom(DIGEST_SALT_BYTES).hex()}
    body = (json.dumps(salted, indent=2) + "\n").encode("utf-8")
    try:
        results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(staged_meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _unlink(staged_meta)
        raise ResultWriteError(
            f"cannot write results in {results_dir}: {exc.strerror or exc}"
        ) from None
    return StagedResult(
        round_id,
        staged_csv,
        staged_meta,
        final_csv,
        final_meta,
        hashlib.sha256(body).digest(),
        count,
    )


def publish_metadata_only(staged: StagedResult) -> Path:
    """Publish a metadata-only result by atomic rename; returns the metadata path."""
    try:
        os.replace(staged.staged_meta, staged.final_meta)
    except OSError as exc:
        _unlink(staged.staged_meta)
        raise ResultWriteError(
            f"cannot publish results in {staged.final_meta.parent}: {exc.strerror or exc}"
        ) from None
    return staged.final_meta


def commit_results(staged: StagedResult) -> Path:
    """Publish staged results by atomic rename; the metadata goes first, the CSV last."""
    meta_published = False
    try:
        os.replace(staged.staged_meta, staged.final_meta)
        meta_published = True
        os.replace(staged.staged_csv, staged.final_csv)
    except OSError as exc:
        _unlink(staged.staged_csv, staged.staged_meta)
        if meta_published:
            _unlink(staged.final_meta)
        raise ResultWriteError(
            f"cannot publish results in {staged.final_csv.parent}: {exc.strerror or exc}"
        ) from None
    return staged.final_csv


def discard_staged(results_dir: Path, round_id: str) -> bool:
    """Remove a round's staged files; True if anything was removed."""
    staged_csv, staged_meta, _, _ = _paths(results_dir, round_id)
    return _unlink(staged_csv, staged_meta)


def published_results(results_dir: Path, round_id: str) -> bool:
    """Whether this node published results for the round (they stay until retention ends)."""
    _, _, final_csv, final_meta = _paths(results_dir, round_id)
    return final_csv.exists() or final_meta.exists()


def stale_staged(results_dir: Path) -> list[str]:
    """Round ids with staged results left behind (a node stopped between deliver and commit)."""
    if not results_dir.is_dir():
        return []
    return sorted({p.name[1:].split(".", 1)[0] for p in results_dir.glob(".*.staged")})


def expired_results(results_dir: Path, now: datetime) -> list[tuple[str, Path, Path]]:
    """Published results whose retention has ended: (round id, csv, metadata)."""
    out: list[tuple[str, Path, Path]] = []
    if not results_dir.is_dir():
        return out
    for meta in sorted(results_dir.glob("*.json")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
            delete_after = datetime.fromisoformat(data["delete_after"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not one of ours, or damaged: left for the operator, never guessed at
        if delete_after <= now:
            out.append((meta.stem, meta.with_suffix(".csv"), meta))
    return out


def retention_deadline(now: datetime, days: int) -> datetime:
    """When a result written now must be deleted."""
    return now + timedelta(days=days)


def _open_private(path: Path):  # type: ignore[no-untyped-def]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


def _unlink(*paths: Path) -> bool:
    removed = False
    for path in paths:
        try:
            path.unlink()
            removed = True
        except (FileNotFoundError, NotADirectoryError):
            pass
    return removed
