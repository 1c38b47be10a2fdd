"""A partner roster the coordinator cannot forge: every partner's keys, fixed by a digest.

A node never takes another partner's public keys from the coordinator's word. The
network's partners agree, out of band, on one roster file (a TOML file listing the
network, a version, the coordinator's manifest-signing key and, for every partner,
its Ed25519 signing key, its X25519 agreement key and the SHA-256 fingerprint of its
TLS certificate) and write its digest into the covenant. An operator accepts a roster
on a node only by typing that digest (`accept_roster`); from then on the node uses the
accepted copy in its state directory, and a later roster must carry a higher version
(no rollback to a roster with a key that has since been replaced).

The file::

    network = "wijk-noord"
    version = 3
    coordinator_signing_key = "<64 lowercase hex digits: raw Ed25519 key>"
    coordinator_tls_fingerprint = "<64 hex: SHA-256 of the coordinator's TLS certificate>"
    # During a rotation of the manifest key (both or neither):
    coordinator_previous_signing_key = "<64 hex: the key it signed manifests with before>"
    coordinator_previous_signing_key_valid_until = 2027-01-31T00:00:00Z

    [[partner]]
    id = "gemeente"
    organisation = "Gemeente Wijk-Noord"
    signing_key = "<64 hex: raw Ed25519 key, kruispunt.signing.public_key_bytes>"
    agreement_key = "<64 hex: raw X25519 key, agreement_public_bytes>"
    tls_fingerprint = "<64 hex: SHA-256 of the certificate DER, kruispunt.pki.fingerprint>"
    # During a rotation of the partner's signing key (both or neither):
    previous_signing_key = "<64 hex: the key it signed with before>"
    previous_signing_key_valid_until = 2027-01-31T00:00:00Z

The digest (`roster_digest`) is SHA-256 over a canonical binary encoding of the
*parsed* roster, not over the file's bytes::

    "kruispunt/roster/v1" 0x00
    str(network) u64(version) coordinator_signing_key[32] u32(partner count)
    for each partner, sorted by id:
        str(id) str(organisation) signing_key[32] agreement_key[32] tls_fingerprint[32]
    if the roster pins the coordinator's certificate:
        "coordinator_tls_fingerprint" 0x00 coordinator_tls_fingerprint[32]
    if the coordinator's manifest key is in a rotation's overlap:
        "coordinator_previous_signing_key" 0x00 key[32] u64(valid until, Unix seconds)
    for each partner in a rotation's overlap, sorted by id:
        "partner_previous_signing_key" 0x00 str(id) key[32] u64(valid until, Unix seconds)

where ``str(s)`` is a u32 big-endian byte length followed by the NFC-normalised UTF-8
text and every integer is big-endian. Why the parsed form: partners edit, re-indent,
comment and reorder the file while drafting the covenant, and the same roster written
by two editors must give one digest, or operators learn to ignore a mismatch. Why a
length-prefixed binary form rather than the file text: it leaves no room for two
different rosters to encode alike (no quoting, escaping or separator rules to get
wrong), and it does not depend on how one TOML writer formats strings. Every field is
in it, so any change of meaning (a key, a fingerprint, an organisation's name, the
version) changes the digest. The label keeps the digest from ever equalling a hash
computed for another purpose. The coordinator's fingerprint came later and is appended
only when present, so a roster without it keeps the digest it always had; with it, the
labelled tail cannot be mistaken for a partner (the partner count comes first). The
previous signing keys of a rotation (`kruispunt.signing.KeySet`: a signature by either
key verifies until the end of the overlap, by the new key alone after it) follow the same
rule: absent, the digest is the one the roster had before rotations existed. Note
that ``sha256sum roster.toml`` is therefore not the digest: print it with
`roster_digest` (or `Roster.digest_hex`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import stat
import struct
import tomllib
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from kruispunt import native, pki, signing
from kruispunt.errors import ConfigError
from kruispunt.pki import Identity
from kruispunt.purpose import ID_RE

__all__ = [
    "ACCEPTED_ROSTER_FILE",
    "AGREEMENT_KEY_BYTES",
    "DIGEST_LABEL",
    "FINGERPRINT_BYTES",
    "MAX_ORGANISATION_CHARS",
    "MAX_ROSTER_BYTES",
    "SIGNING_KEY_BYTES",
    "Roster",
    "RosterPartner",
    "accept_roster",
    "agreement_public_bytes",
    "check_agreement_public_key",
    "check_signing_public_key",
    "diff_rosters",
    "generate_agreement_key",
    "load_accepted_roster",
    "load_agreement_key",
    "load_roster",
    "overlap_text",
    "parse_roster",
    "render_roster",
    "roster_digest",
    "save_agreement_key",
]

DIGEST_LABEL = b"kruispunt/roster/v1"
ACCEPTED_ROSTER_FILE = "roster.toml"
AGREEMENT_KEY_BYTES = 32
SIGNING_KEY_BYTES = 32
FINGERPRINT_BYTES = 32
# A roster lists public keys of a few dozen organisations; anything near this is not one.
MAX_ROSTER_BYTES = 1 << 20
MAX_ORGANISATION_CHARS = 200
# Display prefix for keys and fingerprints in diffs: enough to tell keys apart and to find
# the full value in the file with a search, short enough for one line.
_SHORT_HEX = 16

_HEX64_RE = re.compile(r"[0-9a-f]{64}")
_TOP_FIELDS = ("network", "version", "coordinator_signing_key", "partner")
# Optional top-level fields: a roster written before certificates were pinned lacks them.
_OPTIONAL_TOP_FIELDS = (
    "coordinator_tls_fingerprint",
    "coordinator_previous_signing_key",
    "coordinator_previous_signing_key_valid_until",
)
_COORDINATOR_TLS_LABEL = b"coordinator_tls_fingerprint"
_COORDINATOR_PREVIOUS_LABEL = b"coordinator_previous_signing_key"
_PARTNER_PREVIOUS_LABEL = b"partner_previous_signing_key"
_PARTNER_FIELDS = ("id", "organisation", "signing_key", "agreement_key", "tls_fingerprint")
# Optional partner fields: only a partner whose signing key is being rotated has them.
_OPTIONAL_PARTNER_FIELDS = ("previous_signing_key", "previous_signing_key_valid_until")

# The u-coordinates (RFC 7748, little-endian) of every point of small order on Curve25519
# and its twist: 0, 1, p-1 and the two points of order 8 (the list libsodium refuses).
# X25519 with any of them gives the all-zero secret, whatever our key is. Encodings at or
# above p (the non-canonical p, p+1, …) are refused separately.
_X25519_P = 2**255 - 19
_X25519_SMALL_ORDER = frozenset(
    u.to_bytes(32, "little")
    for u in (
        0,
        1,
        325606250916557431795983626356110631294008115727848805560023387167927233504,
        39382357235489614581723060781553021112529911719440698176882885853963445705823,
        _X25519_P - 1,
    )
)


# ---------------------------------------------------------------------------------------
# Key checks


def check_agreement_public_key(raw: bytes) -> bytes:
    """Return `raw` if it is a usable X25519 public key; ValueError says why not.

    Refuses a wrong length, a non-canonical encoding (top bit set or u >= p) and the
    points of small order (the all-zero key among them).
    """
    if not isinstance(raw, bytes):
        raise TypeError(f"agreement key must be bytes, not {type(raw).__name__}")
    if len(raw) != AGREEMENT_KEY_BYTES:
        raise ValueError(f"agreement key must be {AGREEMENT_KEY_BYTES} bytes, not {len(raw)}")
    if int.from_bytes(raw, "little") >= _X25519_P:
        raise ValueError("agreement key is not a canonical X25519 encoding")
    if raw in _X25519_SMALL_ORDER:
        raise ValueError("agreement key is a low-order X25519 point (unusable for agreement)")
    return raw


def check_signing_public_key(raw: bytes) -> bytes:
    """Return `raw` if it is a canonical Ed25519 public key of prime order; else ValueError."""
    if not isinstance(raw, bytes):
        raise TypeError(f"signing key must be bytes, not {type(raw).__name__}")
    if len(raw) != SIGNING_KEY_BYTES:
        raise ValueError(f"signing key must be {SIGNING_KEY_BYTES} bytes, not {len(raw)}")
    # cryptography accepts any 32 bytes here; the native core also refuses non-canonical
    # encodings, points off the curve, of small order or outside the prime-order subgroup
    # (libsodium's crypto_core_ed25519_is_valid_point; tests/unit/test_native.py compares).
    if not native.ed25519_is_valid_point(raw):
        raise ValueError("signing key is not a valid Ed25519 public key")
    return raw


# ---------------------------------------------------------------------------------------
# The roster


def _overlap_keys(
    current: bytes, previous: bytes | None, until: datetime | None, at: datetime
) -> signing.KeySet:
    keys = [ed25519.Ed25519PublicKey.from_public_bytes(current)]
    if previous is not None and until is not None:
        if at.tzinfo is None:
            raise ValueError("the time a signature is checked at must carry a time zone")
        if at < until:
            keys.append(ed25519.Ed25519PublicKey.from_public_bytes(previous))
    return signing.KeySet(tuple(keys))


def _every_key(current: bytes, previous: bytes | None) -> tuple[ed25519.Ed25519PublicKey, ...]:
    raws = (current,) if previous is None else (current, previous)
    return tuple(ed25519.Ed25519PublicKey.from_public_bytes(raw) for raw in raws)


@dataclass(frozen=True)
class RosterPartner:
    """One partner's entry: who it is, and the public keys every other node trusts."""

    id: str
    organisation: str
    signing_key: bytes
    agreement_key: bytes
    tls_fingerprint: bytes
    #: The key this partner signed with before a rotation, and when it stops verifying
    #: (both None outside a rotation's overlap window).
    previous_signing_key: bytes | None = None
    previous_signing_key_valid_until: datetime | None = None

    @property
    def signing_public_key(self) -> ed25519.Ed25519PublicKey:
        """The partner's current Ed25519 key (what it signs with once it holds this roster)."""
        return ed25519.Ed25519PublicKey.from_public_bytes(self.signing_key)

    def signing_keys(self, at: datetime) -> signing.KeySet:
        """The keys that verify this partner's consents, hops, roots and payloads at `at`.

        The current key always; the previous one only before the end of its overlap
        window, so a leaked old key is refused from then on.
        """
        return _overlap_keys(
            self.signing_key, self.previous_signing_key, self.previous_signing_key_valid_until, at
        )

    @property
    def every_signing_key(self) -> tuple[ed25519.Ed25519PublicKey, ...]:
        """Current and previous key, whatever the date: anchors for an audit chain, whose
        own handover event says which key signed which part."""
        return _every_key(self.signing_key, self.previous_signing_key)

    @property
    def agreement_public_key(self) -> x25519.X25519PublicKey:
        """The partner's X25519 key (tag-key shares are sealed to it)."""
        return x25519.X25519PublicKey.from_public_bytes(self.agreement_key)

    @property
    def tls_fingerprint_hex(self) -> str:
        """The TLS fingerprint as `kruispunt.pki.fingerprint` prints it."""
        return self.tls_fingerprint.hex()


@dataclass(frozen=True)
class Roster:
    """A validated roster; partners are kept sorted by id, so equality ignores file order."""

    network: str
    version: int
    coordinator_signing_key: bytes
    partners: tuple[RosterPartner, ...]
    #: SHA-256 of the coordinator's TLS certificate: the only coordinator certificate a node
    #: admits (None in a roster written before certificates were pinned: the CA decides).
    coordinator_tls_fingerprint: bytes | None = None
    #: The manifest key before a rotation, and when it stops verifying (both None outside
    #: a rotation's overlap window).
    coordinator_previous_signing_key: bytes | None = None
    coordinator_previous_signing_key_valid_until: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "partners", tuple(sorted(self.partners, key=lambda p: p.id)))

    @property
    def ids(self) -> tuple[str, ...]:
        """The partner ids, sorted."""
        return tuple(p.id for p in self.partners)

    def partner(self, partner_id: str) -> RosterPartner:
        """The entry for `partner_id`; ConfigError if the roster does not list it."""
        for p in self.partners:
            if p.id == partner_id:
                return p
        raise ConfigError(
            f"partner {partner_id!r} is not in roster version {self.version} "
            f"of network {self.network!r}"
        )

    @property
    def coordinator_public_key(self) -> ed25519.Ed25519PublicKey:
        """The coordinator's current manifest key (what it signs with under this roster)."""
        return ed25519.Ed25519PublicKey.from_public_bytes(self.coordinator_signing_key)

    def coordinator_keys(self, at: datetime) -> signing.KeySet:
        """The keys that verify a manifest at `at`: the current one, and the previous one
        before the end of its overlap window."""
        return _overlap_keys(
            self.coordinator_signing_key,
            self.coordinator_previous_signing_key,
            self.coordinator_previous_signing_key_valid_until,
            at,
        )

    def signing_keys(self, partner_id: str, at: datetime) -> signing.KeySet:
        """`partner(partner_id).signing_keys(at)`: ConfigError if the roster lacks it."""
        return self.partner(partner_id).signing_keys(at)

    @cached_property
    def digest(self) -> bytes:
        """SHA-256 over the canonical encoding (module docstring): what the covenant names."""
        return hashlib.sha256(_canonical_encoding(self)).digest()

    @property
    def digest_hex(self) -> str:
        """`digest` as 64 lowercase hex digits, the form operators type."""
        return self.digest.hex()


def _encode_str(text: str) -> bytes:
    data = unicodedata.normalize("NFC", text).encode("utf-8")
    return struct.pack(">I", len(data)) + data


def _canonical_encoding(roster: Roster) -> bytes:
    parts = [
        DIGEST_LABEL,
        b"\x00",
        _encode_str(roster.network),
        struct.pack(">Q", roster.version),
        roster.coordinator_signing_key,
        struct.pack(">I", len(roster.partners)),
    ]
    for p in roster.partners:  # sorted by id (Roster.__post_init__)
        parts += [
            _encode_str(p.id),
            _encode_str(p.organisation),
            p.signing_key,
            p.agreement_key,
            p.tls_fingerprint,
        ]
    if roster.coordinator_tls_fingerprint is not None:
        parts += [_COORDINATOR_TLS_LABEL, b"\x00", roster.coordinator_tls_fingerprint]
    previous = roster.coordinator_previous_signing_key
    until = roster.coordinator_previous_signing_key_valid_until
    if previous is not None and until is not None:
        parts += [_COORDINATOR_PREVIOUS_LABEL, b"\x00", previous, _unix(until)]
    for p in roster.partners:
        if p.previous_signing_key is not None and p.previous_signing_key_valid_until is not None:
            parts += [
                _PARTNER_PREVIOUS_LABEL,
                b"\x00",
                _encode_str(p.id),
                p.previous_signing_key,
                _unix(p.previous_signing_key_valid_until),
            ]
    return b"".join(parts)


def _unix(moment: datetime) -> bytes:
    return struct.pack(">Q", int(moment.timestamp()))


# ---------------------------------------------------------------------------------------
# Parsing


def _hex32(value: Any, where: str, field: str) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {field} must be a string of 64 lowercase hex digits")
    if _HEX64_RE.fullmatch(value) is None:
        if len(value) != 64:
            found = f"found {len(value)} characters"
        elif re.fullmatch(r"[0-9a-fA-F]*", value):
            found = "found upper-case digits"
        else:
            found = "found characters that are not hex digits"
        raise ConfigError(f"{where}: {field} must be 64 lowercase hex digits (32 bytes), {found}")
    return bytes.fromhex(value)


def _key(value: Any, where: str, field: str, check: Callable[[bytes], bytes]) -> bytes:
    raw = _hex32(value, where, field)
    try:
        return check(raw)
    except ValueError as exc:
        raise ConfigError(f"{where}: {field}: {exc}") from None


def _valid_until(value: Any, where: str, field: str) -> datetime:
    # A TOML offset date-time (2027-01-31T00:00:00Z); whole seconds, so the digest's
    # Unix seconds say exactly what the file says.
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(
            f"{where}: {field} must be a date and time with its offset, "
            "like 2027-01-31T00:00:00Z (not quoted)"
        )
    if value.microsecond:
        raise ConfigError(f"{where}: {field} must be given in whole seconds")
    moment = value.astimezone(UTC)
    if not 0 < moment.timestamp() < 2**63:
        raise ConfigError(f"{where}: {field} is out of range")
    return moment


def _previous_key(
    data: Mapping[str, Any], where: str, key_field: str, until_field: str, current: bytes
) -> tuple[bytes | None, datetime | None]:
    """A rotation's previous key and the end of its overlap, both or neither."""
    has_key, has_until = key_field in data, until_field in data
    if not has_key and not has_until:
        return None, None
    if not has_key or not has_until:
        present, absent = (key_field, until_field) if has_key else (until_field, key_field)
        raise ConfigError(f"{where}: {present} needs {absent} (a rotation names both)")
    previous = _key(data[key_field], where, key_field, check_signing_public_key)
    if previous == current:
        raise ConfigError(f"{where}: {key_field} is the current signing key")
    return previous, _valid_until(data[until_field], where, until_field)


def _organisation(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: organisation must be a string")
    name = unicodedata.normalize("NFC", value)
    if not name.strip():
        raise ConfigError(f"{where}: organisation must not be empty")
    if name != name.strip():
        raise ConfigError(f"{where}: organisation must not start or end with spaces")
    if len(name) > MAX_ORGANISATION_CHARS:
        raise ConfigError(f"{where}: organisation is longer than {MAX_ORGANISATION_CHARS}")
    # Control, format (bidi overrides, zero-width) and unassigned characters would let two
    # rosters look alike to the operator reading the diff while their digests differ.
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ConfigError(
            f"{where}: organisation contains a control or invisible character; "
            "use plain printable text"
        )
    return name


def _check_fields(
    data: Mapping[str, Any], known: tuple[str, ...], where: str, optional: tuple[str, ...] = ()
) -> None:
    missing = [k for k in known if k not in data]
    if missing:
        raise ConfigError(f"{where}: missing field(s): {', '.join(missing)}")
    unknown = sorted(set(data) - set(known) - set(optional))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s): {', '.join(unknown)}")


def _partner(data: Any, network: str, where: str) -> RosterPartner:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a [[partner]] table")
    pid = data.get("id")
    if "id" in data:
        if not isinstance(pid, str) or ID_RE.fullmatch(pid) is None:
            raise ConfigError(
                f"{where}: id must be a letter, then lowercase letters, digits and dashes "
                "(max 63, no run of 8 digits)"
            )
        try:
            Identity.partner(network, pid)
        except ValueError as exc:
            raise ConfigError(f"{where}: id cannot name a certificate: {exc}") from None
        where = f"{where} (id {pid!r})"
    _check_fields(data, _PARTNER_FIELDS, where, _OPTIONAL_PARTNER_FIELDS)
    signing_key = _key(data["signing_key"], where, "signing_key", check_signing_public_key)
    previous, until = _previous_key(
        data, where, "previous_signing_key", "previous_signing_key_valid_until", signing_key
    )
    return RosterPartner(
        id=data["id"],
        organisation=_organisation(data["organisation"], where),
        signing_key=signing_key,
        agreement_key=_key(
            data["agreement_key"], where, "agreement_key", check_agreement_public_key
        ),
        tls_fingerprint=_hex32(data["tls_fingerprint"], where, "tls_fingerprint"),
        previous_signing_key=previous,
        previous_signing_key_valid_until=until,
    )


def _from_dict(data: Mapping[str, Any], source: str) -> Roster:
    _check_fields(data, _TOP_FIELDS, source, _OPTIONAL_TOP_FIELDS)
    network = data["network"]
    if not isinstance(network, str):
        raise ConfigError(f"{source}: network must be a string")
    try:
        Identity.coordinator(network)
    except ValueError as exc:
        raise ConfigError(f"{source}: network: {exc}") from None
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**63:
        raise ConfigError(f"{source}: version must be a whole number of at least 1")
    coordinator = _key(
        data["coordinator_signing_key"], source, "coordinator_signing_key", check_signing_public_key
    )
    entries = data["partner"]
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: partner must be an array of tables ([[partner]])")
    partners: list[RosterPartner] = []
    seen: dict[str, str] = {}
    for n, entry in enumerate(entries, start=1):
        p = _partner(entry, network, f"{source}: partner #{n}")
        where = f"{source}: partner #{n} (id {p.id!r})"
        if p.id in seen:
            raise ConfigError(f"{where}: duplicate id (also {seen[p.id]})")
        # One key or certificate for two partners (or for the coordinator) would let one
        # party speak as another; it is never a legitimate roster.
        for other in partners:
            for field in ("signing_key", "agreement_key", "tls_fingerprint"):
                if getattr(p, field) == getattr(other, field):
                    raise ConfigError(f"{where}: {field} is the same as partner {other.id!r}'s")
        if p.signing_key == coordinator:
            raise ConfigError(f"{where}: signing_key is the coordinator's signing key")
        # A retired key is still a key that signs as its owner until the overlap ends.
        for other in partners:
            for mine, theirs in (
                (p.previous_signing_key, other.signing_key),
                (p.signing_key, other.previous_signing_key),
                (p.previous_signing_key, other.previous_signing_key),
            ):
                if mine is not None and mine == theirs:
                    raise ConfigError(
                        f"{where}: a signing key is the same as one of partner {other.id!r}'s"
                    )
        if p.previous_signing_key == coordinator:
            raise ConfigError(f"{where}: previous_signing_key is the coordinator's signing key")
        seen[p.id] = f"partner #{n}"
        partners.append(p)
    if len(partners) < 2:
        raise ConfigError(f"{source}: a roster lists at least two partners")
    coordinator_tls: bytes | None = None
    if "coordinator_tls_fingerprint" in data:
        coordinator_tls = _hex32(
            data["coordinator_tls_fingerprint"], source, "coordinator_tls_fingerprint"
        )
        for p in partners:
            if p.tls_fingerprint == coordinator_tls:
                raise ConfigError(
                    f"{source}: coordinator_tls_fingerprint is partner {p.id!r}'s tls_fingerprint"
                )
    coordinator_previous, coordinator_until = _previous_key(
        data,
        source,
        "coordinator_previous_signing_key",
        "coordinator_previous_signing_key_valid_until",
        coordinator,
    )
    for p in partners:
        if coordinator_previous is not None and coordinator_previous in (
            p.signing_key,
            p.previous_signing_key,
        ):
            raise ConfigError(
                f"{source}: coordinator_previous_signing_key is a signing key of partner {p.id!r}"
            )
    return Roster(
        network=network,
        version=version,
        coordinator_signing_key=coordinator,
        partners=tuple(partners),
        coordinator_tls_fingerprint=coordinator_tls,
        coordinator_previous_signing_key=coordinator_previous,
        coordinator_previous_signing_key_valid_until=coordinator_until,
    )


def parse_roster(data: bytes | str, *, source: str = "roster") -> Roster:
    """Parse and validate roster text; ConfigError names `source`, the partner and the field."""
    if isinstance(data, bytes):
        if len(data) > MAX_ROSTER_BYTES:
            raise ConfigError(f"{source}: larger than {MAX_ROSTER_BYTES} bytes; not a roster")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{source}: not UTF-8 (byte {exc.start})") from None
    elif isinstance(data, str):
        text = data
    else:
        raise TypeError(f"roster data must be bytes or str, not {type(data).__name__}")
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message carries the line and column.
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    return _from_dict(parsed, source)


def load_roster(path: str | os.PathLike[str]) -> Roster:
    """Read and validate a roster file; ConfigError names the file, partner, field and reason."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_ROSTER_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such roster file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read roster ({exc.strerror})") from None
    return parse_roster(data, source=str(path))


def roster_digest(data: bytes) -> bytes:
    """The 32-byte digest partners write into their covenant for the roster text `data`.

    SHA-256 over the canonical encoding of the parsed roster (module docstring): edits
    to whitespace, comments or order keep it, any change of meaning changes it.
    Raises ConfigError if `data` is not a valid roster.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"roster data must be bytes, not {type(data).__name__}")
    return parse_roster(data).digest


def _toml_string(text: str) -> str:
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def render_roster(roster: Roster) -> str:
    """The canonical TOML text of `roster`: `parse_roster` gives it back, digest and all."""
    lines = [
        "# Kruispunt partner roster. Accept it only with the digest written in the covenant.",
        f"network = {_toml_string(roster.network)}",
        f"version = {roster.version}",
        f'coordinator_signing_key = "{roster.coordinator_signing_key.hex()}"',
    ]
    if roster.coordinator_tls_fingerprint is not None:
        lines.append(f'coordinator_tls_fingerprint = "{roster.coordinator_tls_fingerprint.hex()}"')
    previous = roster.coordinator_previous_signing_key
    until = roster.coordinator_previous_signing_key_valid_until
    if previous is not None and until is not None:
        lines += [
            f'coordinator_previous_signing_key = "{previous.hex()}"',
            f"coordinator_previous_signing_key_valid_until = {_toml_datetime(until)}",
        ]
    for p in roster.partners:
        lines += [
            "",
            "[[partner]]",
            f"id = {_toml_string(p.id)}",
            f"organisation = {_toml_string(p.organisation)}",
            f'signing_key = "{p.signing_key.hex()}"',
            f'agreement_key = "{p.agreement_key.hex()}"',
            f'tls_fingerprint = "{p.tls_fingerprint.hex()}"',
        ]
        if p.previous_signing_key is not None and p.previous_signing_key_valid_until is not None:
            lines += [
                f'previous_signing_key = "{p.previous_signing_key.hex()}"',
                "previous_signing_key_valid_until = "
                + _toml_datetime(p.previous_signing_key_valid_until),
            ]
    return "\n".join(lines) + "\n"


def _toml_datetime(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def overlap_text(previous: bytes | None, until: datetime | None) -> str:
    """How a roster line names a rotation's previous key: "previous key 0123…, valid until
    2027-01-31T00:00:00Z" (empty outside an overlap)."""
    if previous is None or until is None:
        return ""
    return f"previous key {_short(previous)}…, valid until {_toml_datetime(until)}"


# ---------------------------------------------------------------------------------------
# What changed


def _short(raw: bytes) -> str:
    return raw.hex()[:_SHORT_HEX]


def _fingerprint_short(raw: bytes | None) -> str:
    return "none (not pinned)" if raw is None else f"{_short(raw)}…"


def _describe(p: RosterPartner) -> str:
    return (
        f"{p.id} ({p.organisation}): signing key {_short(p.signing_key)}…, "
        f"agreement key {_short(p.agreement_key)}…, TLS {_short(p.tls_fingerprint)}…"
    )


def diff_rosters(old: Roster | None, new: Roster) -> list[str]:
    """Human-readable changes from `old` to `new` (one line each; empty when equal).

    Keys and fingerprints are shown by their first 16 hex digits, as written in the file.
    """
    if old is None:
        out = [
            f"first roster: network {new.network!r}, version {new.version}, "
            f"coordinator signing key {_short(new.coordinator_signing_key)}…"
        ]
        return out + [f"partner added: {_describe(p)}" for p in new.partners]
    out = []
    if old.network != new.network:
        out.append(f"network changed: {old.network!r} -> {new.network!r}")
    if old.version != new.version:
        out.append(f"version: {old.version} -> {new.version}")
    if old.coordinator_signing_key != new.coordinator_signing_key:
        out.append(
            "coordinator signing key changed: "
            f"{_short(old.coordinator_signing_key)}… -> {_short(new.coordinator_signing_key)}…"
        )
    before_overlap = overlap_text(
        old.coordinator_previous_signing_key, old.coordinator_previous_signing_key_valid_until
    )
    after_overlap = overlap_text(
        new.coordinator_previous_signing_key, new.coordinator_previous_signing_key_valid_until
    )
    if before_overlap != after_overlap:
        out.append(
            f"coordinator rotation overlap: {before_overlap or 'none'} -> {after_overlap or 'none'}"
        )
    if old.coordinator_tls_fingerprint != new.coordinator_tls_fingerprint:
        out.append(
            "coordinator TLS fingerprint changed: "
            f"{_fingerprint_short(old.coordinator_tls_fingerprint)} -> "
            f"{_fingerprint_short(new.coordinator_tls_fingerprint)}"
        )
    before = {p.id: p for p in old.partners}
    after = {p.id: p for p in new.partners}
    for pid in sorted(before.keys() - after.keys()):
        out.append(f"partner removed: {pid} ({before[pid].organisation})")
    for pid in sorted(after.keys() - before.keys()):
        out.append(f"partner added: {_describe(after[pid])}")
    for pid in sorted(before.keys() & after.keys()):
        a, b = before[pid], after[pid]
        if a.organisation != b.organisation:
            out.append(
                f"partner {pid}: organisation renamed {a.organisation!r} -> {b.organisation!r}"
            )
        for field, label in (
            ("signing_key", "signing key"),
            ("agreement_key", "agreement key"),
            ("tls_fingerprint", "TLS fingerprint"),
        ):
            x, y = getattr(a, field), getattr(b, field)
            if x != y:
                out.append(f"partner {pid}: {label} changed {_short(x)}… -> {_short(y)}…")
        was = overlap_text(a.previous_signing_key, a.previous_signing_key_valid_until)
        now = overlap_text(b.previous_signing_key, b.previous_signing_key_valid_until)
        if was != now:
            out.append(f"partner {pid}: rotation overlap {was or 'none'} -> {now or 'none'}")
    return out


# ---------------------------------------------------------------------------------------
# The node's accepted roster


def _typed_digest(text: str) -> bytes:
    # Covenants print digests in groups or upper case; what matters is the 64 hex digits.
    if not isinstance(text, str):
        raise TypeError(f"expected digest must be a str, not {type(text).__name__}")
    cleaned = re.sub(r"[\s:]", "", text).lower()
    if _HEX64_RE.fullmatch(cleaned) is None:
        raise ConfigError(
            "the expected roster digest must be 64 hex digits (as written in the covenant)"
        )
    return bytes.fromhex(cleaned)


def load_accepted_roster(state_dir: str | os.PathLike[str]) -> Roster | None:
    """The roster this node accepted last, or None if it never accepted one."""
    path = Path(state_dir) / ACCEPTED_ROSTER_FILE
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    # The accepted roster is this node's trust anchor: whoever may rewrite it may choose
    # every key the node trusts.
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: the accepted roster must be a regular file, not a link")
    if info.st_mode & 0o022:
        raise ConfigError(
            f"{path}: the accepted roster is writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); fix with: chmod 644 {path}"
        )
    return load_roster(path)


def accept_roster(
    state_dir: str | os.PathLike[str],
    roster_path: str | os.PathLike[str],
    expected_digest_hex: str,
) -> tuple[Roster, list[str]]:
    """Accept the roster at `roster_path` if its digest is the one the operator typed.

    Refuses (ConfigError naming both digests) a digest mismatch, and refuses a roster
    whose version is not above the accepted one unless it is the very same roster
    (no rollback). On success the roster is stored in canonical form, atomically, as
    ``<state_dir>/roster.toml`` (mode 0644: it holds public keys only); returns it with
    the changes from the previously accepted roster (`diff_rosters`; empty if unchanged).
    """
    expected = _typed_digest(expected_digest_hex)
    roster = load_roster(roster_path)
    # The digest is public, but compare in constant time anyway: it is a cheap habit, and
    # a verifier should never leak how much of a forged value matched.
    if not hmac.compare_digest(roster.digest, expected):
        raise ConfigError(
            f"{Path(roster_path)}: roster digest is {roster.digest_hex}, not the "
            f"{expected.hex()} you typed; do not accept it until the two agree"
        )
    state = Path(state_dir)
    current = load_accepted_roster(state)
    if current is not None:
        if current.digest == roster.digest:
            return roster, []
        if roster.network != current.network:
            raise ConfigError(
                f"{Path(roster_path)}: roster is for network {roster.network!r}, "
                f"this node accepted a roster of network {current.network!r}"
            )
        if roster.version <= current.version:
            raise ConfigError(
                f"{Path(roster_path)}: roster version {roster.version} is not newer than the "
                f"accepted version {current.version} (digest {current.digest_hex}); "
                "a changed roster needs a higher version"
            )
    changes = diff_rosters(current, roster)
    state.mkdir(parents=True, exist_ok=True)
    pki.atomic_write(
        state / ACCEPTED_ROSTER_FILE,
        render_roster(roster).encode("utf-8"),
        0o644,
        exclusive=False,
    )
    return roster, changes


# ---------------------------------------------------------------------------------------
# X25519 agreement keys


def generate_agreement_key() -> x25519.X25519PrivateKey:
    """A fresh X25519 key; its public half goes into the roster as agreement_key."""
    return x25519.X25519PrivateKey.generate()


def agreement_public_bytes(key: x25519.X25519PrivateKey | x25519.X25519PublicKey) -> bytes:
    """The raw 32-byte X25519 public key (RFC 7748) of `key`, as the roster lists it."""
    if isinstance(key, x25519.X25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, x25519.X25519PublicKey):
        raise TypeError(f"expected an X25519 key, not {type(key).__name__}")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def save_agreement_key(path: str | os.PathLike[str], key: x25519.X25519PrivateKey) -> None:
    """Write `key` as unencrypted PKCS#8 PEM to a new owner-only (0600) file.

    Raises FileExistsError rather than replace an existing key, like
    `kruispunt.pki.write_private_key`: losing an agreement key means a new roster.
    """
    if not isinstance(key, x25519.X25519PrivateKey):
        raise TypeError(f"expected an X25519 private key, not {type(key).__name__}")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pki.atomic_write(path, pem, 0o600, exclusive=True)


def load_agreement_key(path: str | os.PathLike[str]) -> x25519.X25519PrivateKey:
    """Load an X25519 key from a PEM file that only its owner can read.

    The checks of `kruispunt.pki.read_private_key_file`: ConfigError names the file
    and the fix if it is missing, a symlink, not a regular file, readable by group or
    others, or not an X25519 key.
    """
    key = pki.read_private_key_file(path, what="agreement key")
    if not isinstance(key, x25519.X25519PrivateKey):
        raise ConfigError(f"{Path(path)}: expected an X25519 agreement key, found another key type")
    return key
