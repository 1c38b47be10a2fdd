"""Rendering the privacy officer's page: one self-contained HTML document per round.

The page has inline CSS only (report.css, shipped with the package), no
JavaScript (a Content-Security-Policy forbids scripts outright) and prints
on A4. Every value taken from the database is escaped here.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Final

from coordinator.report.gather import (
    GROWTH_WARNING,
    INVALID,
    NEAR_MAX_WARNING,
    NO_ANSWER,
    VERIFIED,
    RoundReport,
    parse_time,
    unix_time,
)
from kruispunt.audit import ChainHead

__all__ = ["render_html", "stylesheet"]


@cache
def stylesheet() -> str:
    """The page's CSS, read once from the package's report.css."""
    return resources.files("coordinator.report").joinpath("report.css").read_text("utf-8")


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _when(text: str | None) -> str:
    moment = parse_time(text)
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
_PHASE_ORDER: Final = ("propose", "blind", "evaluate", "finalize", "reveal", "tally", "deliver")

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
        _section_deletions(report),
        _section_heads(report),
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
        f"<title>{_e(title)}</title>\n<style>{stylesheet()}</style>\n</head>\n<body>\n<main>\n"
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
    why = (
        _e(report.started_reason)
        if report.started_reason
        else '<em class="muted">no reason given</em>'
    )
    items = [
        # Who and why first: the question a privacy officer asks of every round (NEN 7513).
        ("Initiated by", f"<code>{_e(r.initiated_by)}</code>"),
        ("Reason given", why),
    ]
    if report.cancelled_by:
        cancelled = f"<code>{_e(report.cancelled_by)}</code>"
        if report.cancel_reason:
            cancelled += f" — {_e(report.cancel_reason)}"
        items.append(("Cancelled by", cancelled))
    items += [
        ("Network", _e(report.network)),
        ("Purpose (doelbinding)", purpose),
        ("State", state),
        ("Started", _e(_when(r.created_at))),
        ("Finished", _e(_when(r.finished_at)) + _e(duration)),
        ("Manifest SHA-256", f'<code class="hash">{_e(report.manifest_sha256)}</code>'),
        (
            "Protocol version",
            _e(m.protocol_version) if m is not None else "<em>manifest unreadable</em>",
        ),
    ]
    if m is not None:
        items.append(("Manifest expires", _e(_when(unix_time(m.expires_at_unix)))))
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


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _section_deletions(report: RoundReport) -> str:
    """Per partner: deleted on a date (its signed receipt verifies), or still due by one."""
    rows = []
    classes = []
    for d in report.deletions:
        if not d.delivered and d.deleted_at is None and not d.problem:
            status = '<span class="muted">no results delivered: nothing to delete</span>'
            evidence = '<span class="muted">—</span>'
            cls = ""
        elif d.problem:
            status = _badge("receipt INVALID", "bad")
            evidence = f'<span class="reason">{_e(d.problem)}</span>'
            cls = "bad-row"
        elif d.deleted_at is not None:
            status = _badge(f"deleted on {_day(d.deleted_at)}", "ok")
            head = d.node_head
            evidence = "signed receipt verified" + (
                f"; node audit head <code>{_e(_head_text(head))}</code>" if head else ""
            )
            if d.received_at:
                evidence += f'<br><span class="muted small">received {_e(_when(d.received_at))}'
                evidence += "</span>"
            cls = ""
        elif d.due_by is not None and d.overdue(report.generated_at):
            status = _badge(f"OVERDUE: due by {_day(d.due_by)}", "bad")
            evidence = "no deletion receipt received"
            cls = "bad-row"
        else:
            due = f"still due by {_day(d.due_by)}" if d.due_by is not None else "still due"
            status = _badge(due, "warn")
            evidence = '<span class="muted">no deletion receipt yet (retention running)</span>'
            cls = ""
        rows.append([f"<code>{_e(d.partner_id)}</code>", status, evidence])
        classes.append(cls)
    if not rows:
        return ""
    retention = (
        f"{_e(report.purpose.result_retention_days)} days"
        if report.purpose is not None
        else "the purpose's retention"
    )
    return (
        '<section id="deletions"><h2>Deletion of results (bewaartermijn)</h2>'
        f"<p>Each partner deletes its results {retention} after delivery and signs a "
        "deletion receipt, which the coordinator collects at its next contact and checks "
        "against the partner's registered key.</p>"
        + _table(
            "Deletion per partner",
            ["Partner", "Deletion", "Evidence"],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
    )


def _head_text(head: ChainHead | None) -> str:
    return "—" if head is None else f"seq {head.seq} · {head.hash[:16]}…"


def _section_heads(report: RoundReport) -> str:
    """The heads each side kept of the other's log: the coordinator's, signed back in each
    consent and checked on this log; each node's, from its consent and receipts."""
    if not report.heads:
        return ""
    rows = []
    classes = []
    for h in report.heads:
        if h.coordinator_head is None:
            coord = '<span class="muted">none signed</span>'
        else:
            mark = (
                _badge("on this log", "ok")
                if h.on_chain
                else _badge("NOT on this log: cut off or rewritten", "bad")
            )
            coord = f"<code>{_e(_head_text(h.coordinator_head))}</code> {mark}"
        cells = [
            f"<code>{_e(h.partner_id)}</code>",
            coord,
            *(
                f"<code>{_e(_head_text(head))}</code>"
                if head is not None
                else '<span class="muted">—</span>'
                for head in (h.consent_node_head, h.delivery_node_head, h.deletion_node_head)
            ),
        ]
        rows.append(cells)
        classes.append("bad-row" if h.on_chain is False else "")
    return (
        '<section id="heads"><h2>Witnessed audit heads</h2>'
        "<p>Each side keeps the other's audit chain head, so neither log can later be cut "
        "off or rewritten unseen (<code>psi-node audit verify-network</code> checks them "
        "against the nodes' logs).</p>"
        + _table(
            "Audit heads per partner",
            [
                "Partner",
                "Coordinator head signed in its consent",
                "Node head in its consent",
                "Node head in its delivery receipt",
                "Node head in its deletion receipt",
            ],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
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
