"""The doctor framework shared by `psi-node doctor` and `psi-coordinator doctor`.

A doctor's report is a list of `Check`s: a name, a status ("ok", "warn" or "fail") and a
detail a person can act on. Details name files, modes, dates and counts, never an
identifier: `Check` replaces a detail that looks like one (`kruispunt.redact`) as a last
safety net. A report is `ok` when nothing failed; warnings (a certificate that expires
within `EXPIRY_WARN_DAYS`, a node that is not serving yet) do not make it fail.

The helpers here check what both sides have: private key files (owner-only, not a
symlink, the right kind of key), certificates (issued by the network CA, naming the
expected holder, matching the key, not expiring), directories (private, writable) and a
listener (a gRPC health check over mutual TLS). The expiry reminders a serving process
logs live in `kruispunt.expiry`, which servers import without this framework.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import socket
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kruispunt import pki, transport
from kruispunt.errors import ConfigError
from kruispunt.expiry import (
    EXPIRY_WARN_DAYS,
    days_left,
    days_phrase,
    format_moment,
    moment_or_now,
)
from kruispunt.redact import looks_like_identifier
from kruispunt.running import read_running

__all__ = [
    "FAIL",
    "OK",
    "PROBE_TIMEOUT_SECONDS",
    "WARN",
    "Check",
    "DoctorReport",
    "Probe",
    "check_ca_certificate",
    "check_expiry",
    "check_leaf_certificate",
    "check_listener",
    "check_private_directory",
    "check_private_key",
    "check_writable_directory",
    "configured_path",
    "parse_address",
    "probe_health",
]

Status = Literal["ok", "warn", "fail"]
OK: Status = "ok"
WARN: Status = "warn"
FAIL: Status = "fail"

#: How long a health probe waits for a peer before calling it unreachable.
PROBE_TIMEOUT_SECONDS = 3.0

_LABELS: Mapping[str, str] = {OK: "OK", WARN: "WARN", FAIL: "FAIL"}
_NAME_WIDTH_CAP = 48
_REDACTED_DETAIL = "[redacted: this detail looked like it held an identifier]"


# ---------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class Check:
    """One line of a doctor's report."""

    name: str
    status: Status
    detail: str

    def __post_init__(self) -> None:
        if self.status not in _LABELS:
            raise ValueError(f"check status must be ok, warn or fail, not {self.status!r}")
        detail = " ".join(str(self.detail).split())  # one line, whatever an error said
        if looks_like_identifier(detail):
            detail = _REDACTED_DETAIL
        object.__setattr__(self, "detail", detail)

    def as_dict(self) -> dict[str, str]:
        """The check as JSON-ready data."""
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class DoctorReport:
    """Every check a doctor ran, in order; `ok` when none failed."""

    title: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str) -> Check:
        """Append a check and return it."""
        check = Check(name, status, detail)
        self.checks.append(check)
        return check

    def extend(self, checks: list[Check]) -> None:
        """Append several checks."""
        self.checks.extend(checks)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status != FAIL for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when no check failed (warnings are printed, not fatal), 1 otherwise."""
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        out = dict.fromkeys(_LABELS, 0)
        for check in self.checks:
            out[check.status] += 1
        return out

    def by_name(self, name: str) -> Check:
        """The first check called `name` (KeyError if none ran)."""
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (for --json)."""
        return {
            "title": self.title,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [c.as_dict() for c in self.checks],
        }

    def render(self) -> str:
        """The report for a person: one aligned line per check and a closing summary."""
        width = min(max((len(c.name) for c in self.checks), default=0), _NAME_WIDTH_CAP)
        lines = [self.title]
        for check in self.checks:
            lines.append(f"  {_LABELS[check.status]:<4}  {check.name:<{width}}  {check.detail}")
        counts = self.counts()
        lines.append(
            f"{_plural(counts[OK], 'check')} ok, {_plural(counts[WARN], 'warning')}, "
            f"{_plural(counts[FAIL], 'failure')}: exit code {self.exit_code}"
        )
        return "\n".join(lines)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------
# Certificates


def check_expiry(
    name: str, cert: x509.Certificate, now: dt.datetime | None = None, *, renew_hint: str = ""
) -> Check:
    """Fail once `cert` has expired (or is not valid yet), warn within `EXPIRY_WARN_DAYS`."""
    moment = moment_or_now(now)
    hint = f"; {renew_hint}" if renew_hint else ""
    if moment < cert.not_valid_before_utc:
        return Check(
            name,
            FAIL,
            f"not valid before {format_moment(cert.not_valid_before_utc)} "
            "(is this machine's clock right?)",
        )
    days = days_left(cert, moment)
    until = format_moment(cert.not_valid_after_utc)
    if days <= 0:
        return Check(name, FAIL, f"expired on {until}{hint}")
    if days < EXPIRY_WARN_DAYS:
        return Check(name, WARN, f"expires in {days_phrase(days)}, on {until}{hint}")
    return Check(name, OK, f"valid until {until} ({days_phrase(days)} left)")


def check_ca_certificate(
    name: str, path: Path, *, network: str | None = None, now: dt.datetime | None = None
) -> tuple[list[Check], x509.Certificate | None]:
    """Check the network CA certificate at `path` (and, if given, that it serves `network`)."""
    try:
        cert = pki.load_certificate(path)
    except ConfigError as exc:
        return [Check(name, FAIL, str(exc))], None
    try:
        found = pki.ca_network(cert)
    except pki.CertificateIdentityError as exc:
        return [Check(name, FAIL, f"{path}: {exc}")], None
    if network is not None and found != network:
        return [Check(name, FAIL, f"{path}: CA of network {found!r}, expected {network!r}")], None
    checks = [
        Check(name, OK, f"{path}: CA of network {found!r}, fingerprint {pki.fingerprint(cert)}"),
        check_expiry(
            f"{name} expiry",
            cert,
            now,
            renew_hint="a new CA means new certificates for every member",
        ),
    ]
    return checks, cert


def check_leaf_certificate(
    name: str,
    cert: x509.Certificate | Path,
    *,
    ca: x509.Certificate | None,
    expected: pki.Identity,
    key: pki.PrivateKey | None = None,
    key_path: Path | None = None,
    now: dt.datetime | None = None,
    renew_hint: str = "",
) -> tuple[list[Check], x509.Certificate | None]:
    """Check a leaf certificate: issued by `ca`, names `expected`, matches `key`, not expiring.

    `cert` is a certificate or the path of a PEM file. Returns the identity check and
    the expiry check (only the first when the certificate cannot be read at all).
    """
    where = ""
    if isinstance(cert, Path):
        where = f"{cert}: "
        try:
            cert = pki.load_certificate(cert)
        except ConfigError as exc:
            return [Check(name, FAIL, str(exc))], None
    problems: list[str] = []
    try:
        identity: pki.Identity | None = pki.identity_from_certificate(cert)
    except pki.CertificateIdentityError as exc:
        identity = None
        problems.append(str(exc))
    if identity is not None and identity != expected:
        problems.append(f"names {identity.uri}, expected {expected.uri}")
    if ca is not None:
        try:
            # Any moment inside its validity: expiry is reported by its own check below.
            pki.verify_issued_by(cert, ca, now=cert.not_valid_before_utc)
        except pki.CertificateIdentityError as exc:
            problems.append(str(exc))
    if key is not None and not pki.same_public_key(cert.public_key(), key.public_key()):
        problems.append(f"does not match the private key {key_path or ''}".rstrip())
    if problems:
        first = Check(name, FAIL, where + "; ".join(dict.fromkeys(problems)))
    else:
        parts = [f"{expected.uri}"]
        if ca is not None:
            parts.append("issued by the network CA")
        if key is not None:
            parts.append(f"matches {key_path}" if key_path else "matches its key")
        first = Check(name, OK, where + ", ".join(parts))
    return [first, check_expiry(f"{name} expiry", cert, now, renew_hint=renew_hint)], cert


# ---------------------------------------------------------------------------------------
# Files and directories


def _owner_warning(path: Path, owner_of: Path | None) -> str | None:
    """Why `path`'s owner differs from `owner_of`'s (the service user's directory), if it does."""
    if owner_of is None:
        return None
    try:
        mine, theirs = os.stat(path).st_uid, os.stat(owner_of).st_uid
    except OSError:
        return None
    if mine == theirs:
        return None
    return (
        f"owned by uid {mine}, but {owner_of} belongs to uid {theirs}: the service reads it as "
        f"its directory's owner (fix with: chown {theirs} {path})"
    )


def configured_path(
    directory: Path, raw: Mapping[str, Any], table: str, key: str, default: str
) -> Path:
    """A path from a config file as written, made absolute without following symlinks.

    The config loaders resolve symlinks, which hides a symlinked key file from the
    loader's own refusal; the doctor looks at the path the operator actually wrote.
    """
    section = raw.get(table)
    value = section.get(key, default) if isinstance(section, Mapping) else default
    candidate = Path(str(value)).expanduser()
    if not candidate.is_absolute():
        candidate = directory / candidate
    return Path(os.path.abspath(candidate))


def check_private_key(
    name: str,
    path: Path,
    *,
    kind: Literal["tls", "signing"],
    owner_of: Path | None = None,
    written: Path | None = None,
) -> tuple[Check, pki.PrivateKey | None]:
    """Check a private key file: present, regular, mode 0600 or stricter, the right kind.

    `written` is the path as the configuration spells it (`configured_path`), checked
    for being a symlink. A key owned by another user than `owner_of` (the node or
    coordinator directory) gets a warning: the service, running as the directory's
    owner, could not read it.
    """
    if written is not None and written.is_symlink():
        return (
            Check(
                name,
                FAIL,
                f"{written}: private key file is a symlink; refer to the real file instead",
            ),
            None,
        )
    try:
        key = pki.load_private_key(path)
    except ConfigError as exc:
        return Check(name, FAIL, str(exc)), None
    wanted: type = ec.EllipticCurvePrivateKey if kind == "tls" else ed25519.Ed25519PrivateKey
    if not isinstance(key, wanted):
        what = "an EC P-256 TLS key" if kind == "tls" else "an Ed25519 signing key"
        return Check(name, FAIL, f"{path}: expected {what}"), None
    mode = stat.S_IMODE(os.stat(path).st_mode)
    owner = _owner_warning(path, owner_of)
    if owner is not None:
        return Check(name, WARN, f"{path}: {owner}"), key
    return Check(name, OK, f"{path}: owner-only (mode {mode:04o})"), key


def check_running_config(
    name: str,
    folder: Path,
    file: str,
    *,
    sha256: str,
    fixed_sha256: str,
    reloaded: str,
    reload_hint: str,
    restart_hint: str,
) -> Check:
    """Whether the serving process runs `file` as it is now (`kruispunt.running`).

    `sha256` and `fixed_sha256` are the file's digests now; `reloaded` says what the
    server reads again by itself or on SIGHUP ("the policy and inputs"), `reload_hint`
    how to make it read them now (it may name the pid as ``{pid}``), `restart_hint`
    how to restart it.
    """
    running = read_running(folder)
    if running is None or not running.alive:
        return Check(name, OK, "no server running for this directory: nothing to compare")
    who = f"the running server (pid {running.pid}, started {running.started_at})"
    if running.fixed_sha256 != fixed_sha256:
        return Check(
            name,
            WARN,
            f"{file} changed in settings other than {reloaded} since {who} started: it uses "
            f"the old ones until it is restarted ({restart_hint})",
        )
    if running.sha256 != sha256:
        return Check(
            name,
            WARN,
            f"{file} changed since {who} last read it at {running.loaded_at}: {reloaded} shown "
            f"here are not in effect yet; {reload_hint.format(pid=running.pid)}",
        )
    return Check(name, OK, f"{who} runs {file} as it is now (read at {running.loaded_at})")


def check_private_directory(name: str, path: Path) -> Check:
    """A directory holding keys or results must exist and be closed to group and others."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return Check(name, FAIL, f"{path}: not found")
    except OSError as exc:
        return Check(name, FAIL, f"{path}: cannot inspect ({exc.strerror})")
    if not stat.S_ISDIR(info.st_mode):
        return Check(name, FAIL, f"{path}: not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Check(
            name,
            WARN,
            f"{path}: open to group or others (mode {mode:04o}); fix with: chmod 700 {path}",
        )
    return Check(name, OK, f"{path}: owner-only (mode {mode:04o})")


def check_writable_directory(name: str, path: Path, *, private: bool = True) -> Check:
    """Check that this process can create a file in `path` (by doing it), and its mode.

    Writing is the only test that holds for every user, root included (root passes
    any mode check). A missing directory whose parent is writable only warns: the
    node creates it when it first needs it.
    """
    if not path.exists() and not path.is_symlink():
        parent = path.parent
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return Check(name, WARN, f"{path}: does not exist yet (created when first needed)")
        return Check(name, FAIL, f"{path}: does not exist and cannot be created")
    if not path.is_dir():
        return Check(name, FAIL, f"{path}: not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=path)
    except OSError as exc:
        return Check(name, FAIL, f"{path}: not writable by this user ({exc.strerror})")
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    if private:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            return Check(
                name,
                WARN,
                f"{path}: writable, but open to group or others (mode {mode:04o}); "
                f"fix with: chmod 700 {path}",
            )
    return Check(name, OK, f"{path}: writable")


# ---------------------------------------------------------------------------------------
# Listeners and probes

_BRACKETED = re.compile(r"\[(?P<host>[^\]]+)\]:(?P<port>[0-9]+)")


def parse_address(address: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` or ``[IPv6]:PORT`` into host and port; ValueError if malformed."""
    match = _BRACKETED.fullmatch(address)
    if match is not None:
        host, port_text = match["host"], match["port"]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host or ":" in host:
            raise ValueError(f"address {address!r} must be HOST:PORT (IPv6: [ADDR]:PORT)")
    if not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise ValueError(f"address {address!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def _local_target(host: str) -> str:
    """Where to reach a listener bound to `host` from this machine."""
    if host in ("0.0.0.0", "", "*"):  # noqa: S104 - reading a bind address, not binding
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _grpc_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True)
class Probe:
    """What a gRPC health check found: a serving status, or why the peer was unreachable."""

    status: str | None
    error: str | None = None

    @property
    def serving(self) -> bool:
        return self.status == "SERVING"


def probe_health(
    address: str,
    peer: pki.Identity,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    ca_pem: bytes,
    service: str = "",
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> Probe:
    """Call the standard gRPC health check of `peer` at `address` over mutual TLS.

    The handshake proves the listener holds `peer`'s certificate from the network CA
    and accepts ours; the health service is open to every network member.
    """
    channel = transport.secure_channel(
        address, peer, key_pem=key_pem, cert_pem=cert_pem, ca_pem=ca_pem
    )
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return Probe(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
    except grpc.RpcError as exc:
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else None
        name = code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
        reason = str(details or "").strip()
        if len(reason) > 200:
            reason = reason[:197] + "..."
        return Probe(None, f"{name}: {reason}" if reason else name)
    finally:
        channel.close()


def check_listener(
    name: str,
    listen: str,
    peer: pki.Identity,
    *,
    key_pem: bytes,
    cert_pem: bytes,
    ca_pem: bytes,
    service: str,
    command: str,
    timeout: float = PROBE_TIMEOUT_SECONDS,
) -> Check:
    """Is our own server up? Connect to the configured listen address from this machine.

    Nothing listening is a warning (the doctor often runs before `serve` starts); a
    listener that answers the health check over mTLS as `peer` is ok; anything else
    holding the port is a failure, since `serve` could not bind it.
    """
    try:
        host, port = parse_address(listen)
    except ValueError as exc:
        return Check(name, FAIL, str(exc))
    if port == 0:
        return Check(name, WARN, "listen port 0 picks a random port; peers cannot find it")
    target = _local_target(host)
    where = _grpc_address(target, port)
    try:
        with socket.create_connection((target, port), timeout=min(timeout, 1.0)):
            pass
    except OSError:
        return Check(
            name,
            WARN,
            f"nothing listens on {where}: {command} is not running (the port is free for it)",
        )
    probe = probe_health(
        where,
        peer,
        key_pem=key_pem,
        cert_pem=cert_pem,
        ca_pem=ca_pem,
        service=service,
        timeout=timeout,
    )
    if probe.serving:
        return Check(
            name, OK, f"{command} answers on {where}: health SERVING over mTLS as {peer.uri}"
        )
    if probe.status is not None:
        return Check(name, WARN, f"{command} on {where} reports {probe.status}")
    return Check(
        name,
        FAIL,
        f"something listens on {where} but does not answer as {peer.uri} ({probe.error}); "
        f"{command} cannot bind this port",
    )
