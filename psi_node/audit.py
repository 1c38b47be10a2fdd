"""The node's own audit log (a hash-chained, signed JSON Lines file) and its cross-check.

Each line is one event (`kruispunt.audit`) as canonical JSON. Appends
hold a thread lock and an exclusive `flock` on the file, read the current last
line to continue the chain (so the log survives restarts and a second process
such as the CLI), write the line in one `write` and `fsync` before returning.
The file is created with mode 0600 (and narrowed to it if it was wider).

A crash can leave a torn last line. The next append keeps it, ends it with a
newline and continues the chain from the last complete event; `verify` then
reports the torn line (with the seq it would have had) and never skips it
silently. A last complete line that does not parse is not a crash artefact:
`append` refuses to continue and raises AuditChainBroken.

Cross-check
-----------
`cross_check` holds this node's log against the coordinator's export
(`CoordinatorAudit.export`) and lists, per round, every field on which
the two disagree about this node. It reads these events and `details` keys,
which both sides' appends enforce (`kruispunt.audit.NODE_REQUIRED_DETAILS`
and `COORDINATOR_REQUIRED_DETAILS`):

===================  ===================================  ===========================
field compared       node event: details                  coordinator event: details
===================  ===================================  ===========================
``consent``          consent.given / consent.refused      consent.given / consent.refused
                     (``reason``)                         with ``partner``, ``reason``
``set_size``         consent.given: ``set_size``          consent.given: ``partner``, ``set_size``
``records_sent``     records.sent: ``set_size``           set_sizes: ``set_sizes`` {partner: n}
``flagged_count``    results.written: ``flagged_count``   results.delivered: ``partner``,
                                                          ``flagged_count``
===================  ===================================  ===========================

When a round has several events of one kind (a retry), the last one counts. A
value one side has and the other lacks is a mismatch too (e.g. results
delivered but never written). `cross_check` does not verify signatures; the
command an officer runs (`psi-node audit verify-network`, and `audit
cross-check`) uses `kruispunt.audit.witness.verify_network` instead, which
verifies every chain and signature and the heads each side kept of the other.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from kruispunt import signing
from kruispunt.audit import (
    HANDOVER_EVENT,
    NODE_REQUIRED_DETAILS,
    AuditEvent,
    ChainedLog,
    ChainHead,
    Clock,
    VerifyReport,
    event_from_json,
    event_to_json,
    verify_events,
)
from kruispunt.errors import AuditChainBroken, ConfigError

__all__ = ["Mismatch", "NodeAudit", "cross_check", "events_of_file", "verify_file"]

_FILE_MODE: Final = 0o600
_TAIL_CHUNK: Final = 16 * 1024

log = structlog.get_logger(__name__)


# --- reading the file --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    number: int  # 1-based line number in the file
    event: AuditEvent | None  # None: the line does not parse
    terminated: bool  # False only for a last line without its newline
    problem: str = ""


def _parse_lines(data: bytes) -> list[_Line]:
    """Split the file into lines and parse each; never raises on bad content."""
    chunks = data.split(b"\n")
    ends_with_newline = chunks[-1] == b""
    if ends_with_newline:
        chunks.pop()
    lines = []
    for index, raw in enumerate(chunks):
        terminated = ends_with_newline or index < len(chunks) - 1
        try:
            event = event_from_json(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            problem = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
            lines.append(_Line(index + 1, None, terminated, problem))
        else:
            lines.append(_Line(index + 1, event, terminated))
    return lines


def _verify_lines(lines: list[_Line], public_key: Ed25519PublicKey) -> VerifyReport:
    """Verify the chain of the parsed events; the first unparseable line also breaks it."""
    events: list[AuditEvent] = []
    bad: _Line | None = None
    for line in lines:
        if line.event is None:
            bad = line
            break
        events.append(line.event)
    report = verify_events(events, public_key)
    if bad is None or not report.ok:
        return report
    seq = events[-1].seq + 1 if events else 1
    if bad.terminated:
        reason = f"line {bad.number} does not parse ({bad.problem}): torn write or edited"
    else:
        reason = f"line {bad.number} is incomplete: torn write (crash during an append?)"
    return VerifyReport(False, report.count, seq, reason, report.head)


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def verify_file(path: Path, public_key: Ed25519PublicKey) -> VerifyReport:
    """Verify a node audit log file with the node's public key (no private key needed)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: audit log not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    return _verify_lines(_parse_lines(data), public_key)


def events_of_file(path: Path) -> list[AuditEvent]:
    """The events of a node audit log file, read without any key, up to its first bad line.

    A line that does not parse ends what can be read: the chain stops there, so what
    followed cannot be vouched for (`verify_file` names the line). ConfigError if the
    file cannot be read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: audit log not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the audit log ({exc.strerror})") from None
    events = []
    for line in _parse_lines(data):
        if line.event is None:
            break
        events.append(line.event)
    return events


# --- the log -----------------------------------------------------------------------------


class NodeAudit(ChainedLog):
    """The node's chained audit log in the JSON Lines file at `path`.

    Thread-safe, and safe against another process appending to the same file
    (`flock`). `now` injects the clock.
    """

    def __init__(
        self,
        path: Path,
        signing_key: Ed25519PrivateKey,
        *,
        now: Clock | None = None,
        key_path: Path | None = None,
    ) -> None:
        super().__init__(signing_key, now, key_path)
        self._path = Path(path)
        self._lock = threading.Lock()
        created = not self._path.exists()
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd = os.open(
                self._path,
                os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                _FILE_MODE,
            )
        except OSError as exc:
            raise ConfigError(f"{self._path}: cannot open the audit log ({exc.strerror})") from None
        # O_CREAT's mode is filtered by the umask and ignored for an existing file.
        os.fchmod(self._fd, _FILE_MODE)
        if created:
            _fsync_dir(self._path.parent)

    @property
    def path(self) -> Path:
        """Where the log is stored."""
        return self._path

    required_details = NODE_REQUIRED_DETAILS

    def _append_sealed(self, build: Callable[[ChainHead | None], AuditEvent]) -> AuditEvent:
        # flock: another process (a CLI) appending to the same file waits its turn.
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                last, needs_newline = self._read_last()
                self._check_key(last)
                sealed = build(None if last is None else last.head)
                line = event_to_json(sealed).encode("utf-8") + b"\n"
                if needs_newline:
                    log.warning(
                        "audit log lacked its final newline (torn write); kept",
                        path=str(self._path),
                    )
                    line = b"\n" + line
                _write_all(self._fd, line)
                os.fsync(self._fd)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        return sealed

    def _check_key(self, last: AuditEvent | None) -> None:
        """Hold the key the log continues with, reloading it from `key_path` if need be.

        That is the key the last event names: its signer, or the new key of a handover
        (another process, `psi-node rotate-signing-key`, may have rotated it). An event
        signed by a retired key would break the chain for every verifier, so rather than
        write one this refuses.
        """
        if last is None:
            return
        wanted = last.key_id
        if last.event == HANDOVER_EVENT:
            wanted = str(last.details.get("new_key_id", ""))
        held = signing.key_id(self.public_key)
        if self.follow_key(wanted):
            return
        raise ConfigError(
            f"{self._path}: the log continues with signing key {wanted} (event {last.seq}), "
            f"but this process holds key {held}; finish the rotation with "
            "`psi-node rotate-signing-key` and restart"
        )

    def _read_head(self) -> tuple[ChainHead | None, bool]:
        """Return the chain head and whether the file lacks its final newline."""
        last, needs_newline = self._read_last()
        return (None if last is None else last.head), needs_newline

    def _read_last(self) -> tuple[AuditEvent | None, bool]:
        """Return the last complete event and whether the file lacks its final newline.

        The last line may be torn (a crash mid-append): then the head is the
        complete line before it. Reads only the tail of the file.
        """
        size = os.fstat(self._fd).st_size
        if size == 0:
            return None, False
        window = min(size, _TAIL_CHUNK)
        while True:
            tail = os.pread(self._fd, window, size - window)
            lines = tail.split(b"\n")
            whole_file = window == size
            # Without the whole file the first piece may be a partial line: drop it.
            candidates = lines if whole_file else lines[1:]
            needs_newline = not tail.endswith(b"\n")
            if not needs_newline:
                candidates = candidates[:-1]  # the empty piece after the final newline
            wanted = 2 if needs_newline else 1
            if len(candidates) >= wanted or whole_file:
                break
            window = min(size, window * 4)
        if needs_newline and candidates:
            try:
                # A crash right before the newline leaves a whole event: continue from it.
                return event_from_json(candidates[-1].decode("utf-8")), True
            except (UnicodeDecodeError, ValueError):
                candidates = candidates[:-1]
        if not candidates:
            return None, needs_newline
        try:
            return event_from_json(candidates[-1].decode("utf-8")), needs_newline
        except (UnicodeDecodeError, ValueError):
            raise AuditChainBroken(
                f"{self._path}: the last complete line does not parse; verify the log "
                "and move it aside before appending"
            ) from None

    def _lines(self) -> list[_Line]:
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            try:
                return _parse_lines(_read_file(self._path))
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def events(self, round_id: str | None = None) -> list[AuditEvent]:
        """Return the events in file order, optionally only one round's.

        Lines that do not parse are skipped with a warning naming the line
        number; `verify` reports them as a break in the chain.
        """
        events = []
        for line in self._lines():
            if line.event is None:
                log.warning(
                    "audit log line does not parse; skipped", path=str(self._path), line=line.number
                )
                continue
            if round_id is None or line.event.round_id == round_id:
                events.append(line.event)
        return events

    def head(self) -> ChainHead | None:
        """The last complete event's seq and hash."""
        with self._lock:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            try:
                return self._read_head()[0]
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        expected_head: ChainHead | None = None,
    ) -> VerifyReport:
        """Recompute the chain and every signature; report torn or unparseable lines too."""
        key = public_key if public_key is not None else self.public_key
        lines = self._lines()
        report = _verify_lines(lines, key)
        if not report.ok or expected_head is None:
            return report
        events = [line.event for line in lines if line.event is not None]
        return verify_events(events, key, expected_head=expected_head)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(directory: Path) -> None:
    """Make a new file's directory entry durable too."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- cross-check -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One field on which the node's log and the coordinator's disagree for a round."""

    round_id: str
    field: str
    node: object
    coordinator: object


@dataclass(slots=True)
class _View:
    consent: str | None = None
    set_size: int | None = None
    records_sent: int | None = None
    flagged_count: int | None = None


_FIELDS: Final = ("consent", "set_size", "records_sent", "flagged_count")


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _node_views(events: Iterable[AuditEvent]) -> dict[str, _View]:
    views: dict[str, _View] = {}
    for event in events:
        if not event.round_id:
            continue
        view = views.setdefault(event.round_id, _View())
        details = event.details
        if event.event == "consent.given":
            view.consent = "given"
            view.set_size = _int_or_none(details.get("set_size"))
        elif event.event == "consent.refused":
            view.consent = "refused"
            view.set_size = None
        elif event.event == "records.sent":
            view.records_sent = _int_or_none(details.get("set_size"))
        elif event.event == "results.written":
            view.flagged_count = _int_or_none(details.get("flagged_count"))
        elif event.event == "results.withdrawn":
            view.flagged_count = None  # published, then taken back: nothing was delivered
    return views


def _coordinator_views(events: Iterable[AuditEvent], partner: str) -> dict[str, _View]:
    views: dict[str, _View] = {}
    for event in events:
        if not event.round_id:
            continue
        details = event.details
        about_us = details.get("partner") == partner
        if event.event == "consent.given" and about_us:
            view = views.setdefault(event.round_id, _View())
            view.consent = "given"
            view.set_size = _int_or_none(details.get("set_size"))
        elif event.event == "consent.refused" and about_us:
            view = views.setdefault(event.round_id, _View())
            view.consent = "refused"
            view.set_size = None
        elif event.event == "set_sizes":
            sizes = details.get("set_sizes")
            if isinstance(sizes, Mapping) and partner in sizes:
                view = views.setdefault(event.round_id, _View())
                view.records_sent = _int_or_none(sizes[partner])
        elif event.event == "results.delivered" and about_us:
            view = views.setdefault(event.round_id, _View())
            view.flagged_count = _int_or_none(details.get("flagged_count"))
    return views


def cross_check(
    node_events: Iterable[AuditEvent],
    coordinator_events: Iterable[AuditEvent],
    *,
    partner: str,
    rounds: Collection[str] | None = None,
) -> list[Mismatch]:
    """List every field on which the node's log and the coordinator's disagree about `partner`.

    `partner` is this node's partner id in the network. Compares every round
    either side mentions (this node's events; the coordinator's events about
    `partner`), or only `rounds` if given. Returns mismatches ordered by round
    (first appearance) then field: see the module docstring for the fields.
    """
    node = _node_views(node_events)
    coordinator = _coordinator_views(coordinator_events, partner)
    order = list(dict.fromkeys([*node, *coordinator]))
    if rounds is not None:
        wanted = set(rounds)
        order = [round_id for round_id in order if round_id in wanted]
    mismatches = []
    for round_id in order:
        ours = node.get(round_id, _View())
        theirs = coordinator.get(round_id, _View())
        for name in _FIELDS:
            mine, other = getattr(ours, name), getattr(theirs, name)
            if mine != other:
                mismatches.append(Mismatch(round_id, name, mine, other))
    return mismatches
