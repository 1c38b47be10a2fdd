"""The privacy officer's report: one self-contained HTML page per round.

For the FG/DPO (functionaris gegevensbescherming), who has read access and
the coordinator's public key, nothing else. The page states what the round
was for and under which legal bases, whether every partner's stored consent
still verifies against its registered key and is bound to this round's
manifest, the set sizes with their change since the previous completed round
of the same purpose (the probing signal DESIGN.md asks for), flagged counts,
the overlap histogram, phase timings, the round's audit events and whether
the whole audit chain verifies.

The page has inline CSS only, no JavaScript (a Content-Security-Policy forbids
scripts outright) and prints on A4. Every value taken from the database is
escaped. The database holds no identifiers, so the page cannot hold any.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf.message import DecodeError

from coordinator.audit import TABLE, verify_database
from coordinator.config import CoordinatorConfig
from coordinator.store import COMPLETED, RoundRow, Store
from kruispunt import signing
from kruispunt.audit import VerifyReport
from kruispunt.errors import ConfigError, KruispuntError, UnknownRound
from kruispunt.manifest import verify_consent
from kruispunt.purpose import Purpose
from kruispunt.v1 import common_pb2

__all__ = [
    "GROWTH_WARNING",
    "NEAR_MAX_WARNING",
    "ConsentCheck",
    "EventRow",
    "PartnerSizes",
    "ReportSummary",
    "RoundReport",
    "build_report",
    "render_html",
    "write_report",
]

#: A set that grew by more than this fraction since the previous completed round is flagged.
GROWTH_WARNING: Final = 0.5
#: A set larger than this fraction of the purpose's maximum set size is flagged.
NEAR_MAX_WARNING: Final = 0.9

VERIFIED: Final = "verified"
INVALID: Final = "INVALID"
NO_ANSWER: Final = "no answer"

# How many earlier rounds of the purpose are searched for the previous completed one.
_HISTORY_LIMIT: Final = 10_000


@dataclass(frozen=True)
class ReportSummary:
    """What `write_report` wrote and what it found."""

    path: Path
    round_id: str
    round_state: str
    #: the whole audit chain verifies and every stored consent verifies
    verified: bool
    audit_ok: bool
    audit_events: int
    audit_first_bad_seq: int | None
    consents_ok: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ConsentCheck:
    """One partner's answer to the manifest and whether its signature still holds."""

    partner_id: str
    status: str  # VERIFIED, INVALID or NO_ANSWER
    granted: bool | None
    reason: str
    legal_basis: str  # the basis the partner itself stated in its consent
    decided_at: str
    set_size: int | None
    problem: str = ""


@dataclass(frozen=True)
class PartnerSizes:
    """A partner's set size, flagged count and change since the previous completed round."""

    partner_id: str
    contributed: bool
    set_size: int
    excluded: int
    invalid: int
    flagged: int
    previous: int | None
    warnings: tuple[str, ...]

    @property
    def change(self) -> int | None:
        return None if self.previous is None else self.set_size - self.previous

    @property
    def change_fraction(self) -> float | None:
        if self.previous is None or self.previous == 0:
            return None
        return (self.set_size - self.previous) / self.previous


@dataclass(frozen=True)
class EventRow:
    """One stored audit event of the round, as text (a tampered row still displays)."""

    seq: int
    time: str
    event: str
    actor: str
    on_behalf_of: str
    access_point: str
    action: str
    basis: str
    details: str


@dataclass(frozen=True)
class RoundReport:
    """Everything the page shows, gathered from the database."""

    round: RoundRow
    network: str
    manifest: common_pb2.RoundManifest | None
    manifest_sha256: str
    purpose: Purpose | None
    purpose_source: str  # "manifest" or "registry (manifest unreadable)"
    consents: tuple[ConsentCheck, ...]
    sizes: tuple[PartnerSizes, ...]
    previous_round: RoundRow | None
    histogram: Mapping[int, int]
    threshold: int
    phases: Mapping[str, float]
    seconds: float | None
    events: tuple[EventRow, ...]
    audit: VerifyReport
    audit_key_id: str
    warnings: tuple[str, ...]
    generated_at: datetime

    @property
    def consents_ok(self) -> bool:
        return all(c.status != INVALID for c in self.consents)

    @property
    def delete_results_by(self) -> datetime | None:
        """When the partners' result files must be gone (only a completed round has any)."""
        if self.round.state != COMPLETED or self.purpose is None:
            return None
        finished = _parse_time(self.round.finished_at or self.round.created_at)
        if finished is None:
            return None
        return finished + timedelta(days=self.purpose.result_retention_days)


# -- gathering -------------------------------------------------------------------------------


def write_report(
    config: CoordinatorConfig,
    round_id: str,
    out: Path,
    *,
    public_key: Ed25519PublicKey | None = None,
    now: datetime | None = None,
) -> ReportSummary:
    """Write the privacy officer's HTML page for one round to `out` (atomically).

    The audit chain is verified under `public_key`, by default the key at
    `config.signing_public_key`. Raises UnknownRound for a round id the
    database does not know, ConfigError if the database, the key or the
    output directory is missing.
    """
    key = public_key if public_key is not None else _load_public_key(config.signing_public_key)
    report = build_report(config, round_id, key, now=now)
    page = render_html(report)
    _write_atomic(Path(out), page)
    return ReportSummary(
        path=Path(out),
        round_id=round_id,
        round_state=report.round.state,
        verified=report.audit.ok and report.consents_ok,
        audit_ok=report.audit.ok,
        audit_events=report.audit.count,
        audit_first_bad_seq=report.audit.first_bad_seq,
        consents_ok=report.consents_ok,
        warnings=report.warnings,
    )


def build_report(
    config: CoordinatorConfig,
    round_id: str,
    public_key: Ed25519PublicKey,
    *,
    now: datetime | None = None,
) -> RoundReport:
    """Gather one round's report from the coordinator database; raise UnknownRound if absent."""
    if not config.database.is_file():
        raise ConfigError(f"{config.database}: no coordinator database here")
    store = Store(config.database, readonly=True)
    try:
        row = store.round(round_id)
        if row is None:
            raise UnknownRound(f"round {round_id!r} is not known to this coordinator")
        manifest = _parse_manifest(row.manifest)
        warnings: list[str] = []
        purpose, source = _purpose(store, row, manifest, warnings)
        digest = hashlib.sha256(row.manifest).digest()
        partners = list(manifest.partners) if manifest is not None else []
        consents = _check_consents(store, row, partners, digest)
        previous = _previous_completed(store, row)
        sizes = _sizes(row, purpose, consents, previous)
    finally:
        store.close()
    audit = verify_database(config.database, public_key)
    events = _round_events(config.database, round_id)

    if not audit.ok:
        warnings.insert(0, f"audit log BROKEN at event seq {audit.first_bad_seq}: {audit.reason}")
    for c in consents:
        if c.status == INVALID:
            warnings.append(f"consent of {c.partner_id} is INVALID: {c.problem}")
    for s in sizes:
        warnings.extend(f"{s.partner_id}: {w}" for w in s.warnings)
    summary = row.summary
    return RoundReport(
        round=row,
        network=manifest.network if manifest is not None and manifest.network else config.network,
        manifest=manifest,
        manifest_sha256=digest.hex(),
        purpose=purpose,
        purpose_source=source,
        consents=tuple(consents),
        sizes=tuple(sizes),
        previous_round=previous,
        histogram=_histogram(summary.get("histogram")),
        threshold=int(summary.get("threshold") or (purpose.threshold if purpose else 0)),
        phases={str(k): float(v) for k, v in dict(summary.get("phases") or {}).items()},
        seconds=float(summary["seconds"]) if "seconds" in summary else None,
        events=tuple(events),
        audit=audit,
        audit_key_id=signing.key_id(public_key),
        warnings=tuple(warnings),
        generated_at=now if now is not None else datetime.now(UTC),
    )


def _load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return signing.load_public_key(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no coordinator public key here") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot use as the coordinator public key: {exc}") from None


def _parse_manifest(body: bytes) -> common_pb2.RoundManifest | None:
    manifest = common_pb2.RoundManifest()
    try:
        manifest.ParseFromString(body)
    except DecodeError:
        return None
    return manifest


def _purpose(
    store: Store,
    row: RoundRow,
    manifest: common_pb2.RoundManifest | None,
    warnings: list[str],
) -> tuple[Purpose | None, str]:
    """The purpose exactly as signed into the manifest; the registry's only as a fallback."""
    if manifest is not None:
        try:
            return Purpose.from_proto(manifest.purpose), "manifest"
        except KruispuntError:
            pass
    warnings.append("the stored manifest cannot be read: purpose shown from the registry")
    registered = store.purpose(row.purpose_id)
    return registered, "registry (manifest unreadable)"


def _check_consents(
    store: Store, row: RoundRow, partners: Sequence[str], manifest_sha256: bytes
) -> list[ConsentCheck]:
    stored = {c[0]: c for c in store.consents(row.id)}
    order = list(partners) + sorted(set(stored) - set(partners))
    out: list[ConsentCheck] = []
    for pid in order:
        if pid not in stored:
            out.append(ConsentCheck(pid, NO_ANSWER, None, "", "", "", None))
            continue
        _pid, granted, reason, body, signature = stored[pid]
        problem = ""
        consent: common_pb2.Consent | None = None
        partner = store.partner(pid)
        if partner is None:
            problem = "partner is not registered (no key to verify with)"
        elif pid not in partners:
            problem = "partner is not in this round's manifest"
        else:
            try:
                key = signing.load_public_key(partner.signing_key)
            except ValueError:
                problem = "the partner's registered key is not an Ed25519 key"
            else:
                try:
                    consent = verify_consent(
                        common_pb2.SignedConsent(consent=body, signature=signature),
                        key,
                        round_id=row.id,
                        partner_id=pid,
                        manifest_sha256=manifest_sha256,
                    )
                except KruispuntError as exc:  # SignatureInvalid or ManifestRejected
                    problem = str(exc)
        if consent is not None and (consent.granted != granted or consent.reason != reason):
            problem = "the stored decision differs from the signed consent"
        if consent is None or problem:
            out.append(ConsentCheck(pid, INVALID, granted, reason, "", "", None, problem))
            continue
        out.append(
            ConsentCheck(
                pid,
                VERIFIED,
                consent.granted,
                consent.reason,
                consent.legal_basis,
                _unix(consent.decided_at_unix),
                int(consent.set_size) if consent.granted else None,
            )
        )
    return out


def _previous_completed(store: Store, row: RoundRow) -> RoundRow | None:
    """The latest completed round of the same purpose created before this one."""
    for other in store.rounds(purpose_id=row.purpose_id, limit=_HISTORY_LIMIT):
        if other.state == COMPLETED and (other.created_at, other.id) < (row.created_at, row.id):
            return other
    return None


def _sizes(
    row: RoundRow,
    purpose: Purpose | None,
    consents: Sequence[ConsentCheck],
    previous: RoundRow | None,
) -> list[PartnerSizes]:
    parts: Mapping[str, Any] = row.summary.get("partners") or {}
    before: Mapping[str, Any] = (previous.summary.get("partners") or {}) if previous else {}
    granted = {c.partner_id: c for c in consents if c.granted}
    order = [c.partner_id for c in consents] + sorted(set(parts) - {c.partner_id for c in consents})
    out: list[PartnerSizes] = []
    for pid in order:
        mine: Mapping[str, Any] = parts.get(pid) or {}
        size = int(mine.get("set_size", 0))
        contributed = pid in granted
        prev = int(before[pid].get("set_size", 0)) if pid in before else None
        warnings: list[str] = []
        if contributed and prev is not None and prev > 0 and (size - prev) / prev > GROWTH_WARNING:
            warnings.append(
                f"set grew by {(size - prev) / prev:.0%} since the previous completed round "
                f"({prev} to {size}; warning above +{GROWTH_WARNING:.0%})"
            )
        if contributed and purpose is not None and size > NEAR_MAX_WARNING * purpose.max_set_size:
            warnings.append(
                f"set size {size} is above {NEAR_MAX_WARNING:.0%} of the purpose's maximum "
                f"({purpose.max_set_size})"
            )
        signed_size = granted[pid].set_size if pid in granted else None
        if signed_size is not None and mine and signed_size != size:
            warnings.append(
                f"stored set size {size} differs from the {signed_size} in the signed consent"
            )
        out.append(
            PartnerSizes(
                partner_id=pid,
                contributed=contributed,
                set_size=size,
                excluded=int(mine.get("excluded_count", 0)),
                invalid=int(mine.get("invalid_count", 0)),
                flagged=int(mine.get("flagged_count", 0)),
                previous=prev,
                warnings=tuple(warnings),
            )
        )
    return out


def _histogram(raw: object) -> dict[int, int]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[int, int] = {}
    for k, v in raw.items():
        try:
            out[int(k)] = int(v)
        except (TypeError, ValueError):
            continue
    return dict(sorted(out.items()))


def _round_events(db_path: Path, round_id: str) -> list[EventRow]:
    """The round's stored audit rows, read-only and as text, so a tampered row still shows."""
    uri = db_path.resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (TABLE,)
        ).fetchone()
        if exists is None:
            return []
        rows = conn.execute(
            "SELECT seq, time, event, actor, on_behalf_of, access_point, action, basis, details "
            "FROM audit_events WHERE round_id = ? ORDER BY seq",
            (round_id,),
        ).fetchall()
    finally:
        conn.close()
    return [
        EventRow(
            seq=int(r[0]) if isinstance(r[0], int) else -1,
            time=str(r[1]),
            event=str(r[2]),
            actor=str(r[3]),
            on_behalf_of=str(r[4]),
            access_point=str(r[5]),
            action=str(r[6]),
            basis=str(r[7]),
            details=_details_text(r[8]),
        )
        for r in rows
    ]


def _details_text(raw: object) -> str:
    """Event details as `key: value` pairs (the stored text itself if it is not JSON)."""
    try:
        data = json.loads(str(raw))
    except json.JSONDecodeError:
        return str(raw)
    if not isinstance(data, dict):
        return json.dumps(data, ensure_ascii=False)
    parts = []
    for k, v in data.items():
        if v in ("", None, [], {}):
            continue
        text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
        parts.append(f"{k}: {text}")
    return "; ".join(parts)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _unix(seconds: int) -> str:
    if seconds <= 0:
        return ""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _write_atomic(out: Path, text: str) -> None:
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent}: output directory does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# -- rendering -------------------------------------------------------------------------------


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _when(text: str | None) -> str:
    moment = _parse_time(text)
    if moment is None:
        return text or "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")  # narrow no-break space groups thousands


def _table(
    caption: str,
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    row_classes: Sequence[str] | None = None,
    css_class: str = "",
) -> str:
    """A table; `head` and `caption` are escaped here, cells must already be HTML."""
    ths = "".join(
        f'<th scope="col"{" class=num" if i in numeric else ""}>{_e(h)}</th>'
        for i, h in enumerate(head)
    )
    body = []
    for n, cells in enumerate(rows):
        cls = row_classes[n] if row_classes else ""
        tds = "".join(
            f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(cells)
        )
        body.append(f"<tr{f' class={cls}' if cls else ''}>{tds}</tr>")
    table_attr = f' class="{_e(css_class)}"' if css_class else ""
    return (
        f"<table{table_attr}><caption>{_e(caption)}</caption>"
        f"<thead><tr>{ths}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _dl(items: Sequence[tuple[str, str]]) -> str:
    """A definition list; labels are escaped here, values must already be HTML."""
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


# The protocol's phases in the order they run (the stored summary sorts its keys).
_PHASE_ORDER: Final = ("propose", "blind", "evaluate", "finalize", "tally", "deliver")

_STATE_KIND: Final = {
    "completed": "ok",
    "running": "info",
    "refused": "warn",
    "aborted": "warn",
    "failed": "bad",
}


def render_html(report: RoundReport) -> str:
    """The whole page as one HTML document (inline CSS, no scripts)."""
    r = report.round
    title = f"Kruispunt round report {r.id}"
    sections = [
        _section_header(report),
        _section_audit_status(report),
        _section_attention(report),
        _section_legal(report),
        _section_consents(report),
        _section_sizes(report),
        _section_results(report),
        _section_phases(report),
        _section_events(report),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<footer>Generated {_e(_when(report.generated_at.isoformat()))} from the "
        f"coordinator database of network {_e(report.network)}. Aggregates only: the "
        "coordinator never stores an identifier, so this page holds none.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _section_header(report: RoundReport) -> str:
    r = report.round
    m = report.manifest
    p = report.purpose
    state = _badge(r.state, _STATE_KIND.get(r.state, "info"))
    if r.reason:
        state += f' <span class="reason">{_e(r.reason)}</span>'
    purpose = (
        f"<strong>{_e(p.id)}</strong> v{_e(p.version)} — {_e(p.description)}"
        if p is not None
        else f"<strong>{_e(r.purpose_id)}</strong> v{_e(r.purpose_version)}"
    )
    if report.purpose_source != "manifest":
        purpose += f' <span class="muted">({_e(report.purpose_source)})</span>'
    duration = f" ({report.seconds:.1f} s)" if report.seconds is not None else ""
    items = [
        ("Network", _e(report.network)),
        ("Purpose (doelbinding)", purpose),
        ("State", state),
        ("Started", _e(_when(r.created_at))),
        ("Finished", _e(_when(r.finished_at)) + _e(duration)),
        ("Initiated by", f"<code>{_e(r.initiated_by)}</code>"),
        ("Manifest SHA-256", f'<code class="hash">{_e(report.manifest_sha256)}</code>'),
        (
            "Protocol version",
            _e(m.protocol_version) if m is not None else "<em>manifest unreadable</em>",
        ),
    ]
    if m is not None:
        items.append(("Manifest expires", _e(_when(_unix(m.expires_at_unix)))))
        items.append(("Partners (ring order)", _e(", ".join(m.partners))))
    return (
        f'<header><p class="kicker">Kruispunt · privacy officer report (FG/DPO)</p>'
        f"<h1>Round <code>{_e(r.id)}</code></h1>{_dl(items)}</header>"
    )


def _section_audit_status(report: RoundReport) -> str:
    a = report.audit
    if a.ok:
        return (
            '<section class="status ok" id="audit-status"><h2>Audit log: OK</h2>'
            f"<p>The whole audit chain verifies: <strong>{_e(a.count)} events</strong>, every "
            "hash link and Ed25519 signature checked under the coordinator key "
            f"<code>{_e(report.audit_key_id)}</code>.</p></section>"
        )
    return (
        '<section class="status bad" id="audit-status">'
        f"<h2>Audit log: BROKEN at event seq {_e(a.first_bad_seq)}</h2>"
        f"<p><strong>{_e(a.reason)}</strong></p>"
        f"<p>{_e(a.count)} events before it verify under key "
        f"<code>{_e(report.audit_key_id)}</code>; nothing from seq {_e(a.first_bad_seq)} "
        "on can be trusted. Report this to the coordinator's security officer.</p></section>"
    )


def _section_attention(report: RoundReport) -> str:
    if not report.warnings:
        return (
            '<section class="attention none"><h2>Attention</h2>'
            "<p>No warnings: consents verify and no set size changed abnormally.</p></section>"
        )
    items = "".join(f"<li>{_e(w)}</li>" for w in report.warnings)
    return (
        '<section class="attention"><h2>Attention</h2>'
        f'<p>{_e(len(report.warnings))} warning(s):</p><ul class="warnings">{items}</ul>'
        "</section>"
    )


def _section_legal(report: RoundReport) -> str:
    p = report.purpose
    if p is None:
        return (
            '<section id="legal"><h2>Legal basis (grondslag)</h2>'
            "<p><em>The purpose of this round cannot be read.</em></p></section>"
        )
    delete_by = report.delete_results_by
    retention = f"{_e(p.result_retention_days)} days"
    if delete_by is not None:
        retention += (
            f" — partners must delete the results by <strong>"
            f"{_e(delete_by.astimezone(UTC).strftime('%Y-%m-%d'))}</strong>"
        )
    else:
        retention += f" — no results were delivered (round {_e(report.round.state)})"
    items = [
        ("Covenant (convenant)", _e(p.covenant_id)),
        ("DPIA reference", _e(p.dpia_reference)),
        ("Identifier kind", _e(p.identifier_kind)),
        ("Mode", _e(p.mode)),
        ("Threshold", f"flagged when held by at least <strong>{_e(p.threshold)}</strong> partners"),
        (
            "Disclosure level",
            _e(p.disclosure)
            + (
                " (partners learn their flagged records and the count)"
                if p.disclosure == "count"
                else " (partners also learn which partners hold them too)"
            ),
        ),
        ("Maximum set size", _e(_num(p.max_set_size))),
        ("Result retention (bewaartermijn)", retention),
    ]
    basis_rows = [(f"<code>{_e(pid)}</code>", _e(basis)) for pid, basis in p.legal_basis.items()]
    return (
        '<section id="legal"><h2>Purpose and legal basis (doelbinding en grondslag)</h2>'
        + _dl(items)
        + _table(
            "Legal basis per partner, as signed into the manifest",
            ["Partner", "Legal basis"],
            basis_rows,
        )
        + "</section>"
    )


def _section_consents(report: RoundReport) -> str:
    rows = []
    classes = []
    for c in report.consents:
        if c.granted is None:
            decision = _badge("no answer", "warn")
        else:
            decision = _badge("granted", "ok") if c.granted else _badge("refused", "warn")
        signature = {
            VERIFIED: _badge("verified", "ok"),
            INVALID: _badge("INVALID", "bad"),
            NO_ANSWER: _badge("none stored", "warn"),
        }[c.status]
        if c.problem:
            signature += f'<br><span class="reason">{_e(c.problem)}</span>'
        rows.append(
            [
                f"<code>{_e(c.partner_id)}</code>",
                decision,
                _e(c.reason) if c.reason else '<span class="muted">—</span>',
                _e(c.legal_basis) if c.legal_basis else '<span class="muted">—</span>',
                _e(_when(c.decided_at)) if c.decided_at else '<span class="muted">—</span>',
                signature,
            ]
        )
        classes.append("bad-row" if c.status == INVALID else "")
    return (
        '<section id="consents"><h2>Consents (toestemmingen)</h2>'
        "<p>Each stored consent is checked against the partner's registered Ed25519 key and "
        "must answer exactly this round's manifest (its SHA-256).</p>"
        + _table(
            "Consent per partner",
            ["Partner", "Decision", "Reason", "Partner's stated basis", "Decided", "Signature"],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
    )


def _pct(fraction: float) -> str:
    return f"{fraction:+.1%}"


def _section_sizes(report: RoundReport) -> str:
    prev = report.previous_round
    intro = (
        f"Compared with the previous completed round of this purpose, <code>{_e(prev.id)}</code> "
        f"({_e(_when(prev.created_at))})."
        if prev is not None
        else "There is no earlier completed round of this purpose to compare with."
    )
    rows = []
    classes = []
    for s in report.sizes:
        if not s.contributed:
            rows.append(
                [f"<code>{_e(s.partner_id)}</code>", '<span class="muted">not contributed</span>']
                + ['<span class="muted">—</span>'] * 4
            )
            classes.append("")
            continue
        if s.previous is None:
            change = '<span class="muted">new</span>' if prev is not None else "—"
        else:
            delta = s.change or 0
            frac = s.change_fraction
            change = f"{delta:+d}" + (f" ({_e(_pct(frac))})" if frac is not None else "")
        if s.warnings:
            change += "".join(f'<br><span class="warn-text">⚠ {_e(w)}</span>' for w in s.warnings)
        rows.append(
            [
                f"<code>{_e(s.partner_id)}</code>",
                _e(_num(s.set_size)),
                _e(_num(s.previous)) if s.previous is not None else "—",
                change,
                _e(_num(s.excluded)),
                _e(_num(s.invalid)),
            ]
        )
        classes.append("warn-row" if s.warnings else "")
    limits = ""
    if report.purpose is not None:
        limits = (
            f" A warning shows when a set grew by more than {GROWTH_WARNING:.0%} or is above "
            f"{NEAR_MAX_WARNING:.0%} of the maximum set size "
            f"({_e(_num(report.purpose.max_set_size))}): a partner can probe by adding "
            "identifiers it does not hold."
        )
    return (
        '<section id="sizes"><h2>Set sizes</h2>'
        f"<p>{intro}{limits}</p>"
        + _table(
            "Records each partner contributed",
            [
                "Partner",
                "Set size",
                "Previous",
                "Change",
                "Excluded (objection / list)",
                "Invalid rows",
            ],
            rows,
            numeric=(1, 2, 4, 5),
            row_classes=classes,
        )
        + "</section>"
    )


def _section_results(report: RoundReport) -> str:
    flagged_rows = []
    for s in report.sizes:
        if not s.contributed:
            continue
        share = f"{s.flagged / s.set_size:.1%}" if s.set_size else "—"
        flagged_rows.append([f"<code>{_e(s.partner_id)}</code>", _e(_num(s.flagged)), _e(share)])
    if not report.histogram:  # the tally never ran
        return (
            '<section id="results"><h2>Flagged records and overlap</h2>'
            f"<p>No matching took place (round {_e(report.round.state)}).</p></section>"
        )
    n_partners = len(report.manifest.partners) if report.manifest is not None else 0
    hist = dict(report.histogram)
    top = max([n_partners, *hist]) if hist or n_partners else 0
    buckets = [(k, hist.get(k, 0)) for k in range(1, top + 1)]
    hist_rows = [
        [
            _e(k),
            _e(_num(v)),
            _badge("flagged", "bad") if k >= report.threshold else '<span class="muted">no</span>',
        ]
        for k, v in buckets
    ]
    return (
        '<section id="results"><h2>Flagged records and overlap</h2>'
        + _table(
            f"Flagged records per partner (threshold {report.threshold})",
            ["Partner", "Flagged", "Share of its set"],
            flagged_rows,
            numeric=(1, 2),
        )
        + '<div class="keep"><h3>Overlap histogram</h3>'
        "<p>Households (pseudonymous tags of this round) by the number of partners that hold "
        f"them; those held by {_e(report.threshold)} or more are flagged.</p>"
        + _histogram_svg(buckets, report.threshold)
        + "</div>"
        + _table(
            "Overlap histogram (table form)",
            ["Held by partners", "Households", "Flagged"],
            hist_rows,
            numeric=(0, 1),
        )
        + "</section>"
    )


def _histogram_svg(buckets: Sequence[tuple[int, int]], threshold: int) -> str:
    """An inline SVG bar chart: one bar per number of holders, its count above it."""
    if not buckets:
        return ""
    width, height = 720, 280
    left, right, top, bottom = 56, 16, 48, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(v for _k, v in buckets) or 1
    slot = plot_w / len(buckets)
    bar = min(80.0, slot * 0.6)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="hist-title hist-desc">',
        '<title id="hist-title">Overlap histogram</title>',
        '<desc id="hist-desc">'
        + _e(
            "; ".join(
                f"{v} households held by {k} partner{'s' if k != 1 else ''}" for k, v in buckets
            )
        )
        + "</desc>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#444" stroke-width="1"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444" '
        'stroke-width="1"/>',
        f'<text x="{left - 8}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
        f'<text x="{left - 8}" y="{top + 4}" text-anchor="end" class="tick">{_e(_num(peak))}'
        "</text>",
    ]
    for i, (k, v) in enumerate(buckets):
        h = plot_h * v / peak
        if v > 0:
            h = max(h, 2.0)  # a non-zero bucket never disappears
        x = left + slot * i + (slot - bar) / 2
        y = top + plot_h - h
        cls = "bar flagged" if k >= threshold else "bar"
        parts.append(
            f'<rect class="{cls}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}">'
            f"<title>{_e(v)} households held by {_e(k)} partners</title></rect>"
        )
        cx = x + bar / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle" class="value">'
            f"{_e(_num(v))}</text>"
        )
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 18}" text-anchor="middle" class="tick">'
            f"{_e(k)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle" '
        'class="axis">number of partners holding the household</text>'
    )
    parts.append(
        f'<rect class="bar flagged" x="{left + 12}" y="6" width="12" height="12"/>'
        f'<text x="{left + 30}" y="17" class="legend">'
        f"flagged: held by at least {_e(threshold)} partners</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _section_phases(report: RoundReport) -> str:
    if not report.phases:
        return (
            '<section id="phases"><h2>Phase timings</h2>'
            "<p>No protocol phase finished in this round.</p></section>"
        )
    total = sum(report.phases.values()) or 1.0
    known = {name: i for i, name in enumerate(_PHASE_ORDER)}
    ordered = sorted(report.phases.items(), key=lambda kv: (known.get(kv[0], len(known)), kv[0]))
    rows = [
        [
            _e(phase),
            _e(f"{seconds:.3f}"),
            f'<span class="meter"><span style="width:{100 * seconds / total:.1f}%"></span>'
            f"</span> {_e(f'{seconds / total:.0%}')}",
        ]
        for phase, seconds in ordered
    ]
    if report.seconds is not None:
        rows.append(["<strong>whole round</strong>", _e(f"{report.seconds:.3f}"), ""])
    return (
        '<section id="phases"><h2>Phase timings</h2>'
        + _table("Seconds per protocol phase", ["Phase", "Seconds", "Share"], rows, numeric=(1,))
        + "</section>"
    )


def _section_events(report: RoundReport) -> str:
    bad = report.audit.first_bad_seq
    rows = []
    classes = []
    for ev in report.events:
        if report.audit.ok or bad is None or ev.seq < bad:
            mark = '<span class="ok-text">✓</span>'
            cls = ""
        elif ev.seq == bad:
            mark = '<span class="bad-text nowrap">✗ BROKEN</span>'
            cls = "bad-row"
        else:
            mark = '<span class="warn-text">unverified</span>'
            cls = "warn-row"
        rows.append(
            [
                _e(ev.seq),
                "<br>".join(f'<span class="nowrap">{_e(t)}</span>' for t in ev.time.split("T")),
                f'<code class="nowrap">{_e(ev.event)}</code>',
                _e(ev.actor) + f'<br><span class="muted small">via {_e(ev.access_point)}</span>',
                _e(ev.on_behalf_of),
                _e(ev.action),
                f'<span class="small">{_e(ev.basis)}</span>',
                f'<span class="details">{_e(ev.details)}</span>',
                mark,
            ]
        )
        classes.append(cls)
    note = ""
    if bad is not None and not any(ev.seq >= bad for ev in report.events):
        note = (
            f"<p>The chain breaks at seq {_e(bad)}, outside this round's events; this round's "
            "events before it verify.</p>"
        )
    return (
        '<section id="events"><h2>Audit events of this round</h2>'
        "<p>Action: C = create, R = read, U = update, D = delete, E = execute (NEN 7513).</p>"
        + note
        + _table(
            f"{len(report.events)} events",
            [
                "Seq",
                "Time (UTC)",
                "Event",
                "Actor (access point)",
                "On behalf of",
                "Action",
                "Basis",
                "Details",
                "Chain",
            ],
            rows,
            numeric=(0,),
            row_classes=classes,
            css_class="wide events",
        )
        + "</section>"
    )


_CSS: Final = """
:root { --ok:#1b6e2e; --ok-bg:#e6f4ea; --bad:#a50e0e; --bad-bg:#fce8e6; --warn:#8a5300;
  --warn-bg:#fef3e0; --info:#174ea6; --info-bg:#e8f0fe; --line:#d0d4da; --muted:#5f6368; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 "DejaVu Sans", "Segoe UI", Arial, sans-serif; color: #202124;
  background: #fff; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 26px; margin: 4px 0 14px; }
h2 { font-size: 19px; margin: 0 0 10px; border-bottom: 2px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
section, header { margin: 0 0 22px; }
header, dl, .status, .attention, .chart, tr { break-inside: avoid; page-break-inside: avoid; }
h2, h3, caption, thead { break-after: avoid; page-break-after: avoid; }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .06em;
  font-size: 12px; }
code { font-family: "DejaVu Sans Mono", Consolas, monospace; font-size: .92em; }
code.hash { word-break: break-all; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0 0 12px; }
dt { font-weight: 600; color: #3c4043; }
dd { margin: 0; }
table { border-collapse: collapse; min-width: 60%; margin: 6px 0 10px; font-size: 14px; }
table.wide { width: 100%; }
.keep { break-inside: avoid; page-break-inside: avoid; }
caption { text-align: left; font-weight: 600; padding: 4px 0; color: #3c4043; }
th, td { border: 1px solid var(--line); padding: 5px 8px; text-align: left;
  vertical-align: top; }
th { background: #f1f3f4; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad-row td { background: var(--bad-bg); }
tr.warn-row td { background: var(--warn-bg); }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 700;
  font-size: 13px; border: 1px solid currentColor; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.info { color: var(--info); background: var(--info-bg); }
.reason { color: #3c4043; font-size: 13px; }
.muted { color: var(--muted); }
.ok-text { color: var(--ok); font-weight: 700; }
.bad-text { color: var(--bad); font-weight: 700; }
.warn-text { color: var(--warn); font-weight: 600; font-size: 13px; }
.details { display: block; min-width: 240px; font-size: 12px; overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
.small { font-size: 12px; }
.status { border: 3px solid; border-radius: 8px; padding: 12px 16px; }
.status h2 { border: 0; margin: 0 0 4px; font-size: 22px; }
.status p { margin: 4px 0; }
.status.ok { border-color: var(--ok); background: var(--ok-bg); color: var(--ok); }
.status.bad { border-color: var(--bad); background: var(--bad-bg); color: var(--bad); }
.attention { border-left: 6px solid var(--warn); background: var(--warn-bg); padding: 10px 16px; }
.attention.none { border-left-color: var(--ok); background: var(--ok-bg); }
.attention h2 { border: 0; margin: 0 0 4px; }
.attention ul { margin: 4px 0; padding-left: 20px; }
.chart { max-width: 100%; height: auto; display: block; margin: 6px 0; }
.chart .bar { fill: #8ab4f8; stroke: #174ea6; }
.chart .bar.flagged { fill: #c5221f; stroke: #7a0f0d; }
.chart text { font: 13px "DejaVu Sans", Arial, sans-serif; fill: #202124; }
.chart .value { font-weight: 700; }
.chart .axis, .chart .legend { fill: #3c4043; font-size: 12px; }
.meter { display: inline-block; width: 160px; height: 10px; background: #f1f3f4;
  border: 1px solid var(--line); vertical-align: middle; }
.meter span { display: block; height: 100%; background: #5f6368; }
footer { color: var(--muted); font-size: 12px; border-top: 1px solid var(--line);
  padding-top: 8px; }
@page { size: A4; margin: 14mm; }
/* The audit table has nine columns: it prints on landscape pages of its own. */
@page events { size: A4 landscape; margin: 12mm; }
#events, footer { page: events; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  table { font-size: 9pt; }
  tr { break-inside: avoid; }
  .details { font-size: 7.5pt; min-width: 0; }
  table.events { table-layout: fixed; font-size: 8pt; }
  table.events th:nth-child(1) { width: 5%; }
  table.events th:nth-child(2) { width: 10%; }
  table.events th:nth-child(3) { width: 12%; }
  table.events th:nth-child(4) { width: 10%; }
  table.events th:nth-child(5) { width: 9%; }
  table.events th:nth-child(6) { width: 6%; }
  table.events th:nth-child(7) { width: 12%; }
  table.events th:nth-child(8) { width: 27%; }
  table.events th:nth-child(9) { width: 9%; }
  table.events .small, table.events .warn-text, table.events .bad-text { font-size: 7.5pt; }
  table.events td { overflow-wrap: anywhere; }
}
"""
