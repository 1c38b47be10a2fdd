"""Signed round manifests (coordinator) and signed consents (nodes).

The coordinator signs the exact serialized RoundManifest bytes; a node
verifies those bytes and parses them, never a re-serialisation. A consent
binds itself to the manifest by its SHA-256, so a consent cannot be moved to
another round or another version of the purpose.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.message import DecodeError

from kruispunt import PROTOCOL_VERSION, signing
from kruispunt.errors import ManifestRejected, SignatureInvalid
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2

MANIFEST_CONTEXT = signing.CONTEXT_MANIFEST
#: Points per chunk in a round's signed batch statements (kruispunt.hops bounds it).
DEFAULT_CHUNK_POINTS = 4096
# The bound kruispunt.hops puts on a statement's chunk (hops imports this module).
MAX_CHUNK_POINTS = 65536
CONSENT_CONTEXT = signing.CONTEXT_CONSENT


# Round ids name files at the nodes (results/<round_id>.csv): only this shape is accepted.
ROUND_ID_RE = re.compile(r"r\d{8}T\d{6}-[0-9a-f]{8}")


def new_round_id(now: datetime) -> str:
    """A round id that sorts by time and is never reused (random suffix)."""
    return f"r{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"


def is_round_id(text: str) -> bool:
    """True for a well-formed round id (safe in a file name, in logs and in audit rows)."""
    return ROUND_ID_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class VerifiedManifest:
    """A manifest whose signature, protocol version and expiry have been checked."""

    signed: common_pb2.SignedManifest
    manifest: common_pb2.RoundManifest
    purpose: Purpose
    sha256: bytes

    @property
    def round_id(self) -> str:
        return self.manifest.round_id

    @property
    def partners(self) -> list[str]:
        return list(self.manifest.partners)

    @property
    def roster_sha256(self) -> bytes:
        return self.manifest.roster_sha256

    @property
    def chunk_points(self) -> int:
        return self.manifest.chunk_points


def sign_manifest(
    key: Ed25519PrivateKey,
    *,
    round_id: str,
    network: str,
    purpose: Purpose,
    partners: list[str],
    now: datetime,
    ttl_seconds: int,
    initiated_by: str,
    roster_sha256: bytes,
    chunk_points: int = DEFAULT_CHUNK_POINTS,
    audit_head: common_pb2.AuditHead | None = None,
) -> common_pb2.SignedManifest:
    """Build and sign the manifest for one round, for the roster with digest `roster_sha256`.

    `audit_head` is the coordinator's audit chain head at creation (`kruispunt.audit.
    head_to_proto`): every node logs it and signs it back in its consent.
    """
    manifest = common_pb2.RoundManifest(
        round_id=round_id,
        network=network,
        purpose=purpose.to_proto(),
        partners=partners,
        created_at_unix=int(now.timestamp()),
        expires_at_unix=int(now.timestamp()) + ttl_seconds,
        protocol_version=PROTOCOL_VERSION,
        initiated_by=initiated_by,
        roster_sha256=roster_sha256,
        chunk_points=chunk_points,
        coordinator_audit_head=audit_head,
    )
    body = manifest.SerializeToString(deterministic=True)
    return common_pb2.SignedManifest(
        manifest=body, signature=signing.sign(key, MANIFEST_CONTEXT, body)
    )


def verify_manifest(
    signed: common_pb2.SignedManifest,
    coordinator_key: signing.Verifier,
    *,
    now: datetime,
    network: str | None = None,
) -> VerifiedManifest:
    """Check signature, protocol version, network and expiry; raise ManifestRejected."""
    try:
        signing.verify(coordinator_key, MANIFEST_CONTEXT, signed.manifest, signed.signature)
    except SignatureInvalid:
        raise ManifestRejected("manifest signature does not verify") from None
    manifest = common_pb2.RoundManifest()
    try:
        manifest.ParseFromString(signed.manifest)
    except DecodeError:
        raise ManifestRejected("manifest does not parse") from None
    if not is_round_id(manifest.round_id):
        raise ManifestRejected("manifest round id is malformed")
    if manifest.protocol_version != PROTOCOL_VERSION:
        raise ManifestRejected(
            f"protocol version {manifest.protocol_version!r} not supported "
            f"(this node speaks {PROTOCOL_VERSION})"
        )
    if network is not None and manifest.network != network:
        raise ManifestRejected(f"manifest is for network {manifest.network!r}, not {network!r}")
    if manifest.expires_at_unix <= int(now.timestamp()):
        raise ManifestRejected("manifest has expired")
    if len(set(manifest.partners)) != len(manifest.partners) or len(manifest.partners) < 2:
        raise ManifestRejected("manifest partner list is malformed")
    if len(manifest.roster_sha256) != hashlib.sha256().digest_size:
        raise ManifestRejected("manifest names no partner roster")
    if not 1 <= manifest.chunk_points <= MAX_CHUNK_POINTS:
        raise ManifestRejected(f"manifest chunk size must be 1..{MAX_CHUNK_POINTS} points")
    try:
        purpose = Purpose.from_proto(manifest.purpose)
    except Exception as exc:  # a signed but invalid purpose is still a bad manifest
        raise ManifestRejected(f"manifest purpose is invalid: {exc}") from None
    if set(manifest.partners) != set(purpose.legal_basis):
        raise ManifestRejected("manifest partners differ from the purpose's partners")
    return VerifiedManifest(
        signed=signed,
        manifest=manifest,
        purpose=purpose,
        sha256=hashlib.sha256(signed.manifest).digest(),
    )


def sign_consent(key: Ed25519PrivateKey, consent: common_pb2.Consent) -> common_pb2.SignedConsent:
    """Sign a node's consent or refusal."""
    body = consent.SerializeToString(deterministic=True)
    signature = signing.sign(key, CONSENT_CONTEXT, body)
    return common_pb2.SignedConsent(consent=body, signature=signature)


def verify_consent(
    signed: common_pb2.SignedConsent,
    partner_key: signing.Verifier,
    *,
    round_id: str,
    partner_id: str,
    manifest_sha256: bytes,
) -> common_pb2.Consent:
    """Check a consent's signature and that it answers this manifest from this partner."""
    signing.verify(partner_key, CONSENT_CONTEXT, signed.consent, signed.signature)
    consent = common_pb2.Consent()
    try:
        consent.ParseFromString(signed.consent)
    except DecodeError:
        raise SignatureInvalid() from None
    if (
        consent.round_id != round_id
        or consent.partner_id != partner_id
        or consent.manifest_sha256 != manifest_sha256
    ):
        raise ManifestRejected("consent does not answer this round's manifest")
    return consent


def utcnow() -> datetime:
    """The current time, timezone-aware (injectable callers pass their own)."""
    return datetime.now(UTC)
