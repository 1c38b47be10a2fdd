"""How both CLIs show a partner roster: the digest grouped for reading aloud, one line a partner.

`psi-coordinator roster export/show` and `psi-node roster accept/show` print the same
roster the same way, so that the operators on either side of a telephone call (or of
a printed covenant) compare like with like.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kruispunt.roster import Roster, overlap_text
from kruispunt.wording import plural

__all__ = ["grouped_digest", "roster_data", "roster_lines"]

# Four hex digits a group: sixteen groups, each short enough to read out and repeat.
_GROUP = 4
_SHORT_HEX = 16


def grouped_digest(digest_hex: str) -> str:
    """`digest_hex` in groups of four digits separated by spaces (`accept` takes it so too)."""
    return " ".join(digest_hex[i : i + _GROUP] for i in range(0, len(digest_hex), _GROUP))


def roster_data(roster: Roster) -> dict[str, Any]:
    """The roster as JSON-ready data: network, version, digest and every partner's keys."""
    return {
        "network": roster.network,
        "version": roster.version,
        "digest": roster.digest_hex,
        "digest_grouped": grouped_digest(roster.digest_hex),
        "coordinator_signing_key": roster.coordinator_signing_key.hex(),
        **_previous(
            "coordinator_",
            roster.coordinator_previous_signing_key,
            roster.coordinator_previous_signing_key_valid_until,
        ),
        "partners": [
            {
                "id": p.id,
                "organisation": p.organisation,
                "signing_key": p.signing_key.hex(),
                "agreement_key": p.agreement_key.hex(),
                "tls_fingerprint": p.tls_fingerprint.hex(),
                **_previous("", p.previous_signing_key, p.previous_signing_key_valid_until),
            }
            for p in roster.partners
        ],
    }


def _previous(prefix: str, key: bytes | None, until: datetime | None) -> dict[str, str]:
    # Only a roster in a rotation's overlap has these, as only its file does.
    if key is None or until is None:
        return {}
    return {
        f"{prefix}previous_signing_key": key.hex(),
        f"{prefix}previous_signing_key_valid_until": until.isoformat(),
    }


def roster_lines(roster: Roster) -> list[str]:
    """The roster for a person: digest both ways, then one line per partner (key prefixes)."""
    lines = [
        f"roster version {roster.version} of network {roster.network!r}, "
        f"{plural(len(roster.partners), 'partner')}",
        f"  digest (read aloud): {grouped_digest(roster.digest_hex)}",
        f"  digest:              {roster.digest_hex}",
        f"  coordinator signing key {roster.coordinator_signing_key.hex()[:_SHORT_HEX]}…",
    ]
    overlap = overlap_text(
        roster.coordinator_previous_signing_key,
        roster.coordinator_previous_signing_key_valid_until,
    )
    if overlap:
        lines.append(f"    {overlap}")
    for p in roster.partners:
        lines.append(
            f"  {p.id:<20} signing {p.signing_key.hex()[:_SHORT_HEX]}…  "
            f"agreement {p.agreement_key.hex()[:_SHORT_HEX]}…  "
            f"TLS {p.tls_fingerprint.hex()[:_SHORT_HEX]}…  {p.organisation}"
        )
        overlap = overlap_text(p.previous_signing_key, p.previous_signing_key_valid_until)
        if overlap:
            lines.append(f"    {overlap}")
    return lines
