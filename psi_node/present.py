"""What ``psi-node`` prints: each command's text for a person and its ``--json`` for a program.

`cli.py` parses the command line and calls the node; the words and layouts
of the answers live here, so that the two forms of one answer stay side by
side. Output goes to the ``sys.stdout`` and ``sys.stderr`` of the moment of
the call (tests capture them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from kruispunt.cli import Output
from kruispunt.roster_text import roster_data, roster_lines
from kruispunt.wording import plural

if TYPE_CHECKING:
    from kruispunt import pki
    from kruispunt.audit import VerifyReport
    from kruispunt.doctor import DoctorReport
    from kruispunt.roster import Roster
    from psi_node.inputs import InputReport
    from psi_node.provision import NodeInitResult
    from psi_node.signing_keys import NodeKeyRotation


# -- set-up -----------------------------------------------------------------------------------


def node_created(res: NodeInitResult, partner: str, directory: str) -> Output:
    """`init`: where the node is, and what to send to the coordinator next."""
    return Output(
        {
            "directory": str(res.directory),
            "csr": str(res.csr),
            "signing_public_key": str(res.signing_public_key),
            "agreement_public_key": str(res.agreement_public_key),
            "config": str(res.config),
        },
        f"Node {partner!r} created in {res.directory}\n"
        f"  private keys (never send these): tls/node.key, signing/node.ed25519, "
        f"signing/node.x25519\n"
        f"Send these three files to the network coordinator:\n"
        f"  {res.csr}\n  {res.signing_public_key}\n  {res.agreement_public_key}\n"
        f"together with the address (HOST:PORT) at which the coordinator reaches this node.\n"
        f"Then install what comes back with `psi-node install-cert {directory} ...`,\n"
        f"accept the partner roster with `psi-node roster accept {directory} FILE --digest HEX`\n"
        f"(the digest from the covenant), and configure inputs and policy in {res.config}.",
    )


def certificate_installed(identity: pki.Identity, directory: str) -> Output:
    """`install-cert`: who this node now is, and how to start it."""
    return Output(
        {"identity": identity.uri, "network": identity.network},
        f"Installed: this node is {identity.uri} in network {identity.network!r}.\n"
        f"Start it with `psi-node serve {directory}`.",
    )


def roster_accepted(roster: Roster, changes: Sequence[str], state_file: Path) -> Output:
    """`roster accept`: the accepted version and digest, and what changed."""
    lines = [
        f"accepted roster version {roster.version} (stored in {state_file})"
        if changes
        else f"roster version {roster.version} was already accepted: nothing changed",
        *roster_lines(roster),
    ]
    if changes:
        lines.append("changes:")
        lines += [f"  - {c}" for c in changes]
    return Output(
        {"accepted": str(state_file), **roster_data(roster), "changes": list(changes)},
        "\n".join(lines),
    )


def roster_shown(roster: Roster, state_file: Path) -> Output:
    """`roster show`: the roster this node accepted."""
    return Output(
        {"accepted": str(state_file), **roster_data(roster)},
        "\n".join([f"accepted roster ({state_file})", *roster_lines(roster)]),
    )


def signing_key_rotated(done: NodeKeyRotation, directory: str) -> Output:
    """`rotate-signing-key`: the handover, the public key file to send, what happens next."""
    return Output(
        {
            "previous_key_id": done.previous_key_id,
            "new_key_id": done.new_key_id,
            "public_key": str(done.public_key),
            "previous_key": str(done.previous_key),
            "handover_seq": done.seq,
        },
        f"Signing key rotated: audit log handed over at event {done.seq}, key "
        f"{done.previous_key_id} -> {done.new_key_id}.\n"
        f"  new public key: {done.public_key}\n"
        f"    send it to the coordinator: psi-coordinator partner rotate-key DIR ID "
        f"--signing-key {done.public_key.name}\n"
        f"  previous key:   {done.previous_key} (rounds are signed with it until this node "
        f"accepts a roster that names the new key)\n"
        f"Then accept the new roster: psi-node roster accept {directory} ROSTER_FILE --digest HEX",
    )


# -- audit, retention, doctor -------------------------------------------------------------------


def audit_verified(report: VerifyReport) -> Output:
    """`audit verify`: whether the node's chain and signatures hold."""
    return Output(report.as_dict(), report.describe("node audit log"))


def purged(deleted: Sequence[Path]) -> Output:
    """`purge`: the result files deleted because their retention ended."""
    return Output(
        [str(p) for p in deleted],
        "\n".join(f"deleted {p}" for p in deleted) or "no results past retention",
    )


def doctor(report: DoctorReport) -> Output:
    """`doctor`: every check with its verdict."""
    return Output(report.as_dict(), report.render())


# -- check-input ----------------------------------------------------------------------------


def input_report(report: InputReport, exclusions: Path | None, *, as_json: bool) -> None:
    """`check-input`: the counts and the invalid lines (numbers and reasons, never values)."""
    if as_json:
        json.dump({**report.as_dict(), "error": None}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_report(report, exclusions, sys.stdout)


def input_failure(
    file: Path, kind: str, message: str, *, as_json: bool, retry: str | None = None
) -> None:
    """`check-input` could not read the file: the reason, on stdout as JSON or on stderr.

    `retry` is the command line that applies the fix the message suggests.
    """
    if as_json:
        json.dump(
            {"file": str(file), "kind": kind, "usable": False, "error": message, "retry": retry},
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        print(f"psi-node check-input: error: {message}", file=sys.stderr)
        if retry is not None:
            print(f"try: {retry}", file=sys.stderr)


def _print_report(report: InputReport, exclusions: Path | None, out: TextIO) -> None:
    delimiter = "tab" if report.delimiter == "\t" else repr(report.delimiter)
    print(f"{report.path}: kind {report.kind}, delimiter {delimiter}", file=out)
    if report.mapping is not None:
        print(f"columns: {report.mapping.describe()}", file=out)
    for label, n in (
        ("rows", report.rows),
        ("valid", report.valid),
        ("invalid", report.invalid),
        ("duplicate", report.duplicate),
        ("objected", report.objected),
        ("excluded", report.excluded),
        ("blank", report.blank),
    ):
        print(f"  {label:<10} {n:>10,}", file=out)
    if report.problems:
        print("invalid rows:", file=out)
        for line, reason in report.problems:
            print(f"  line {line}: {reason}", file=out)
        if report.problems_truncated:
            print(f"  ... and {report.invalid - len(report.problems):,} more", file=out)
    if exclusions is not None:
        print(
            f"exclusion file {exclusions}: {report.exclusion_entries:,} identifiers, "
            f"{report.exclusion_invalid:,} invalid",
            file=out,
        )
        for line, reason in report.exclusion_problems:
            print(f"  line {line}: {reason}", file=out)
    if report.usable:
        print(f"usable: {plural(report.valid, 'record')} can take part in a round", file=out)
    else:
        print("not usable: no valid records", file=out)


class Progress:
    """Rows-read counter on a terminal, redrawn in place once `every` rows have been read."""

    def __init__(self, stream: TextIO, *, every: int) -> None:
        self.stream = stream
        self.every = every
        self.shown = False

    def __call__(self, rows: int) -> None:
        if rows >= self.every or self.shown:
            self.stream.write(f"\r  {rows:,} rows read")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        """Erase the counter's line, if it was drawn."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
