"""The exception hierarchy shared by node and coordinator.

Every error we raise on purpose derives from KruispuntError. Each subclass
carries the gRPC status code it maps to at the server edge (the one place is
`kruispunt.transport.AuthInterceptor`, in front of every RPC), so handlers
raise domain errors and never build statuses themselves. Messages must never
contain an identifier: they may be sent over the wire and are always logged.
"""

from __future__ import annotations

import grpc


class KruispuntError(Exception):
    """Root of every error Kruispunt raises on purpose."""

    status: grpc.StatusCode = grpc.StatusCode.INTERNAL


class ConfigError(KruispuntError):
    """A configuration file or directory is missing or invalid."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidIdentifier(KruispuntError, ValueError):
    """An identifier does not validate (reason only; the value is never included)."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class InputFileError(KruispuntError):
    """An input file cannot be used (names file, line and reason, never a value)."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class InvalidPoint(KruispuntError, ValueError):
    """A point or scalar failed to decode or verify. Deliberately opaque."""

    status = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str = "invalid group element") -> None:
        super().__init__(message)


class ProtocolError(KruispuntError):
    """A peer sent a message that does not fit the round (order, size, phase)."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class AttackRefused(ProtocolError):
    """A message fails authentication against the roster: the relay (or a peer) lied.

    Raised for batches that are not what their route signed, forwarded consents that do
    not verify, results that no evidence backs, and the like. Nodes audit every one as
    `attack.refused`; the status says the caller is not allowed to have this done.
    """

    status = grpc.StatusCode.PERMISSION_DENIED


class UnknownRound(KruispuntError):
    """The round id is not known (or has already ended) here."""

    status = grpc.StatusCode.NOT_FOUND


class ManifestRejected(KruispuntError):
    """A manifest is badly signed, expired, replayed or malformed."""

    status = grpc.StatusCode.PERMISSION_DENIED


class ConsentRefused(KruispuntError):
    """A partner refused a round; the reason says why."""

    status = grpc.StatusCode.FAILED_PRECONDITION


class SignatureInvalid(KruispuntError):
    """An Ed25519 signature does not verify. Deliberately opaque."""

    status = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, message: str = "signature does not verify") -> None:
        super().__init__(message)


class AuditChainBroken(KruispuntError):
    """An audit log failed verification; `seq` is the first bad sequence number."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


class NotAuthorized(KruispuntError):
    """The caller's certificate does not carry the role this call needs."""

    status = grpc.StatusCode.PERMISSION_DENIED


class RoundFailed(KruispuntError):
    """A round could not complete; the reason is recorded in the audit log."""

    status = grpc.StatusCode.ABORTED


class ResourceLimit(KruispuntError):
    """A set or message is larger than the purpose or server allows."""

    status = grpc.StatusCode.RESOURCE_EXHAUSTED
