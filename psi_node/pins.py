"""Which coordinator certificate a node admits: the one its accepted roster pins.

The network CA vouches for every certificate it ever issued, the coordinator's old
ones included, until each expires. A node therefore admits the coordinator only
with the certificate whose SHA-256 fingerprint the accepted roster lists
(`Roster.coordinator_tls_fingerprint`): a renewed coordinator certificate supersedes
the old one the moment the node accepts the roster that names it, and a certificate
the CA issued to anyone else for the coordinator's name is refused. A node with no
roster yet, or a roster written before certificates were pinned, has nothing to pin
and leaves the decision to the CA (such a node refuses every manifest anyway, or its
doctor says to accept a newer roster).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from kruispunt.pki import Identity, Role
from kruispunt.roster import ACCEPTED_ROSTER_FILE, Roster, load_accepted_roster

__all__ = ["CoordinatorPin"]


class CoordinatorPin:
    """The node's admission check (`kruispunt.transport.Admit`) of the coordinator's certificate.

    Reads the accepted roster again whenever the file changes (an operator may accept a
    new one while the node serves), so a new pin holds from the next call on.
    """

    def __init__(self, state_dir: Path) -> None:
        self._path = Path(state_dir) / ACCEPTED_ROSTER_FILE
        self._state_dir = Path(state_dir)
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None
        self._roster: Roster | None = None

    def _current(self) -> Roster | None:
        try:
            info = os.stat(self._path)
        except FileNotFoundError:
            return None
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        with self._lock:
            if stamp != self._seen:
                self._roster = load_accepted_roster(self._state_dir)
                self._seen = stamp
            return self._roster

    def __call__(self, peer: Identity, fingerprint: str) -> str | None:
        """None to admit `peer`; else why not (sent to the caller, names only the identity)."""
        if peer.role is not Role.COORDINATOR:
            return None  # the interceptor's role rule decides; nothing is pinned for others
        roster = self._current()
        if roster is None or roster.coordinator_tls_fingerprint is None:
            return None
        pinned = roster.coordinator_tls_fingerprint.hex()
        if fingerprint == pinned:
            return None
        return (
            f"{peer.uri}: certificate {fingerprint[:16]}... is not the coordinator certificate "
            f"pinned by roster version {roster.version} ({pinned[:16]}...); a renewed "
            "certificate is admitted once this node accepts the roster that lists it"
        )
