"""Rendering the privacy officer's page: one self-contained HTML document per round.

The page has inline CSS only (report.css, shipped with the package), no
JavaScript (a Content-Security-Policy forbids scripts outright) and prints
on A4. Every value taken from the database is escaped here; every word of the
page comes from `words.WORDS`, in the language asked for (Dutch by default).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from typing import Final

from coordinator.phases import in_protocol_order
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
from coordinator.report.words import DEFAULT_LANGUAGE, WORDS, Words
from kruispunt.audit import ChainHead

__all__ = ["render_html", "stylesheet"]


@cache
def stylesheet() -> str:
    """The page's CSS, read once from the package's report.css."""
    return resources.files("coordinator.report").joinpath("report.css").read_text("utf-8")


def _e(value: object) -> str:
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _t(w: Words, key: str, /, **params: object) -> str:
    """A template as HTML: the template is the report's own markup, every text field escaped."""
    return w(key, **{k: _e(v) if isinstance(v, str) else v for k, v in params.items()})


def _when(w: Words, text: str | None) -> str:
    moment = parse_time(text)
    if moment is None:
        return text or "—"
    return w.moment(moment)


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


def _muted(text: str) -> str:
    return f'<span class="muted">{_e(text)}</span>'


_DASH: Final = '<span class="muted">—</span>'

_STATE_KIND: Final = {
    "completed": "ok",
    "running": "info",
    "refused": "warn",
    "aborted": "warn",
    "failed": "bad",
}


def _state(w: Words, state: str) -> str:
    """A round state in the page's language (an unknown stored state as stored)."""
    return w(f"state.{state}") if f"state.{state}" in WORDS[w.lang] else state


def _phase(w: Words, phase: str) -> str:
    """A phase's name in the page's language (an unknown stored phase as stored)."""
    return w(f"phase.{phase}") if f"phase.{phase}" in WORDS[w.lang] else phase


def render_html(report: RoundReport, *, lang: str = DEFAULT_LANGUAGE) -> str:
    """The whole page as one HTML document (inline CSS, no scripts), in `lang` (nl or en)."""
    w = Words(lang)
    r = report.round
    title = w("page.title", round=r.id)
    sections = [
        _section_header(report, w),
        _section_outcome(report, w),
        _section_audit_status(report, w),
        _section_attention(report, w),
        _section_deletions(report, w),
        _section_heads(report, w),
        _section_legal(report, w),
        _section_consents(report, w),
        _section_sizes(report, w),
        _section_bilateral(report, w) if report.bilateral else _section_results(report, w),
        _section_phases(report, w),
        _section_events(report, w),
    ]
    footer = _t(
        w, "page.footer", when=_when(w, report.generated_at.isoformat()), network=report.network
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(w.lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{stylesheet()}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(s for s in sections if s)
        + f"\n<footer>{footer}</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def _section_header(report: RoundReport, w: Words) -> str:
    r = report.round
    m = report.manifest
    p = report.purpose
    state = _badge(_state(w, r.state), _STATE_KIND.get(r.state, "info"))
    if r.reason:
        state += f' <span class="reason">{_e(r.reason)}</span>'
    purpose = (
        f"<strong>{_e(p.id)}</strong> v{_e(p.version)} — {_e(p.description)}"
        if p is not None
        else f"<strong>{_e(r.purpose_id)}</strong> v{_e(r.purpose_version)}"
    )
    if report.purpose_source != "manifest":
        purpose += f" {_muted('(' + w('header.source_registry') + ')')}"
    duration = (
        " (" + w("header.seconds", seconds=w.decimal(report.seconds, 1)) + ")"
        if report.seconds is not None
        else ""
    )
    why = (
        _e(report.started_reason)
        if report.started_reason
        else f'<em class="muted">{_e(w("header.no_reason"))}</em>'
    )
    items = [
        # Who and why first: the question a privacy officer asks of every round (NEN 7513).
        (w("header.initiated_by"), f"<code>{_e(r.initiated_by)}</code>"),
        (w("header.reason"), why),
    ]
    if report.cancelled_by:
        cancelled = f"<code>{_e(report.cancelled_by)}</code>"
        if report.cancel_reason:
            cancelled += f" — {_e(report.cancel_reason)}"
        items.append((w("header.cancelled_by"), cancelled))
    items += [
        (w("header.network"), _e(report.network)),
        (w("header.purpose"), purpose),
        (w("header.state"), state),
        (w("header.started"), _e(_when(w, r.created_at))),
        (w("header.finished"), _e(_when(w, r.finished_at)) + _e(duration)),
        (w("header.manifest_sha256"), f'<code class="hash">{_e(report.manifest_sha256)}</code>'),
        (
            w("header.protocol"),
            _e(m.protocol_version)
            if m is not None
            else f"<em>{_e(w('header.manifest_unreadable'))}</em>",
        ),
    ]
    if m is not None:
        items.append((w("header.expires"), _e(_when(w, unix_time(m.expires_at_unix)))))
        label = "header.partners_bilateral" if report.bilateral else "header.partners"
        partners = list(m.partners)
        if report.bilateral and p is not None and p.bilateral is not None:
            partners = [p.bilateral.client_partner, p.bilateral.server_partner]
        items.append((w(label), _e(", ".join(partners))))
    return (
        f'<header><p class="kicker">{_e(w("page.kicker"))}</p>'
        f"<h1>{_e(w('page.heading'))} <code>{_e(r.id)}</code></h1>{_dl(items)}</header>"
    )


def _section_outcome(report: RoundReport, w: Words) -> str:
    """A refused, failed or aborted round says so first: who refused and why, or the reason."""
    state = report.round.state
    if state not in ("refused", "failed", "aborted"):
        return ""
    lines = []
    if state == "refused" and report.refusals:
        lines = [
            f"<li>{_t(w, 'outcome.refused.partner', partner=x.partner_id, reason=x.reason)}</li>"
            for x in report.refusals
        ]
    body = f'<ul class="refusals">{"".join(lines)}</ul>' if lines else ""
    if state != "refused" or not report.refusals:
        key = "outcome.refused.coordinator" if state == "refused" else "outcome.reason"
        body += f"<p>{_t(w, key, reason=report.round.reason or '—')}</p>"
    kind = "bad" if state == "failed" else "warn"
    return (
        f'<section class="outcome {kind}" id="outcome">'
        f"<h2>{_e(w(f'outcome.{state}.title'))}</h2>"
        f"<p>{_e(w(f'outcome.{state}.text'))}</p>{body}</section>"
    )


def _section_audit_status(report: RoundReport, w: Words) -> str:
    a = report.audit
    key = f"<code>{_e(report.audit_key_id)}</code>"
    if a.ok:
        return (
            f'<section class="status ok" id="audit-status"><h2>{_e(w("audit.ok.title"))}</h2>'
            f"<p>{w('audit.ok.text', count=_e(a.count), key=key)}</p></section>"
        )
    return (
        '<section class="status bad" id="audit-status">'
        f"<h2>{_e(w('audit.bad.title', seq=a.first_bad_seq))}</h2>"
        f"<p><strong>{_e(a.reason)}</strong></p>"
        f"<p>{w('audit.bad.text', count=_e(a.count), key=key, seq=_e(a.first_bad_seq))}</p>"
        "</section>"
    )


def _section_attention(report: RoundReport, w: Words) -> str:
    if not report.warnings:
        return (
            f'<section class="attention none"><h2>{_e(w("attention.title"))}</h2>'
            f"<p>{_e(w('attention.none'))}</p></section>"
        )
    items = "".join(f"<li>{_e(w.notice(n))}</li>" for n in report.warnings)
    n = len(report.warnings)
    count = w("attention.count.one") if n == 1 else w("attention.count.many", count=n)
    return (
        f'<section class="attention"><h2>{_e(w("attention.title"))}</h2>'
        f'<p>{_e(count)}</p><ul class="warnings">{items}</ul>'
        "</section>"
    )


def _section_deletions(report: RoundReport, w: Words) -> str:
    """Per partner: deleted on a date (its signed receipt verifies), or still due by one."""
    rows = []
    classes = []
    for d in report.deletions:
        if not d.delivered and d.deleted_at is None and not d.problem:
            status = _muted(w("deletions.nothing"))
            evidence = _DASH
            cls = ""
        elif d.problem:
            status = _badge(w("deletions.invalid"), "bad")
            evidence = f'<span class="reason">{_e(d.problem)}</span>'
            cls = "bad-row"
        elif d.deleted_at is not None:
            status = _badge(w("deletions.deleted_on", date=d.deleted_at), "ok")
            head = d.node_head
            evidence = _e(w("deletions.verified"))
            if head:
                code = f"<code>{_e(_head_text(w, head))}</code>"
                evidence += "; " + w("deletions.node_head", head=code)
            if d.received_at:
                received = _e(w("deletions.received", when=_when(w, d.received_at)))
                evidence += f'<br><span class="muted small">{received}</span>'
            cls = ""
        elif d.due_by is not None and d.overdue(report.generated_at):
            status = _badge(w("deletions.overdue", date=d.due_by), "bad")
            evidence = _e(w("deletions.no_receipt"))
            cls = "bad-row"
        else:
            due = (
                w("deletions.due_by", date=d.due_by) if d.due_by is not None else w("deletions.due")
            )
            status = _badge(due, "warn")
            evidence = _muted(w("deletions.running"))
            cls = ""
        rows.append([f"<code>{_e(d.partner_id)}</code>", status, evidence])
        classes.append(cls)
    if not rows:
        return ""
    retention = (
        w("deletions.retention_days", days=report.purpose.result_retention_days)
        if report.purpose is not None
        else w("deletions.retention_unknown")
    )
    return (
        f'<section id="deletions"><h2>{_e(w("deletions.title"))}</h2>'
        f"<p>{_t(w, 'deletions.intro', retention=retention)}</p>"
        + _table(
            w("deletions.caption"),
            [w("deletions.col.partner"), w("deletions.col.deletion"), w("deletions.col.evidence")],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
    )


def _head_text(w: Words, head: ChainHead | None) -> str:
    return "—" if head is None else w("heads.text", seq=head.seq, hash=head.hash[:16])


def _section_heads(report: RoundReport, w: Words) -> str:
    """The heads each side kept of the other's log: the coordinator's, signed back in each
    consent and checked on this log; each node's, from its consent and receipts."""
    if not report.heads:
        return ""
    rows = []
    classes = []
    for h in report.heads:
        if h.coordinator_head is None:
            coord = _muted(w("heads.none_signed"))
        else:
            mark = (
                _badge(w("heads.on_log"), "ok")
                if h.on_chain
                else _badge(w("heads.not_on_log"), "bad")
            )
            coord = f"<code>{_e(_head_text(w, h.coordinator_head))}</code> {mark}"
        cells = [
            f"<code>{_e(h.partner_id)}</code>",
            coord,
            *(
                f"<code>{_e(_head_text(w, head))}</code>" if head is not None else _DASH
                for head in (h.consent_node_head, h.delivery_node_head, h.deletion_node_head)
            ),
        ]
        rows.append(cells)
        classes.append("bad-row" if h.on_chain is False else "")
    command = "<code>psi-node audit verify-network</code>"
    return (
        f'<section id="heads"><h2>{_e(w("heads.title"))}</h2>'
        f"<p>{w('heads.intro', command=command)}</p>"
        + _table(
            w("heads.caption"),
            [
                w("heads.col.partner"),
                w("heads.col.coordinator"),
                w("heads.col.consent"),
                w("heads.col.delivery"),
                w("heads.col.deletion"),
            ],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
    )


def _section_legal(report: RoundReport, w: Words) -> str:
    p = report.purpose
    if p is None:
        return (
            f'<section id="legal"><h2>{_e(w("legal.title_short"))}</h2>'
            f"<p><em>{_e(w('legal.unreadable'))}</em></p></section>"
        )
    delete_by = report.delete_results_by
    retention = _e(w("legal.retention.days", days=p.result_retention_days))
    if delete_by is not None:
        retention += _t(w, "legal.retention.by", date=w.date(delete_by))
    else:
        retention += _t(w, "legal.retention.none", state=_state(w, report.round.state))
    items = [
        (w("legal.covenant"), _e(p.covenant_id)),
        (w("legal.dpia"), _e(p.dpia_reference)),
        (w("legal.kind"), _e(p.identifier_kind)),
        (
            w("legal.mode"),
            _e(w(f"legal.mode.{p.mode}")) if p.mode in ("network", "bilateral") else _e(p.mode),
        ),
    ]
    if p.bilateral is not None and p.mode == "bilateral":
        # A two-party round has no threshold, and its disclosure is fixed by its roles.
        b = p.bilateral
        learns = "legal.bilateral.size_only" if b.size_only else "legal.bilateral.records"
        items += [
            (w("legal.bilateral.client"), f"<code>{_e(b.client_partner)}</code>"),
            (w("legal.bilateral.server"), f"<code>{_e(b.server_partner)}</code>"),
            (w("legal.bilateral.learns"), _e(w(learns))),
        ]
    else:
        items += [
            (w("legal.threshold"), w("legal.threshold.text", threshold=_e(p.threshold))),
            (
                w("legal.disclosure"),
                _t(
                    w,
                    "legal.disclosure.count"
                    if p.disclosure == "count"
                    else "legal.disclosure.partners",
                    level=p.disclosure,
                ),
            ),
        ]
    items += [
        (w("legal.max_set_size"), _e(w.number(p.max_set_size))),
        (w("legal.retention"), retention),
    ]
    basis_rows = [(f"<code>{_e(pid)}</code>", _e(basis)) for pid, basis in p.legal_basis.items()]
    return (
        f'<section id="legal"><h2>{_e(w("legal.title"))}</h2>'
        + _dl(items)
        + _table(
            w("legal.caption"),
            [w("legal.col.partner"), w("legal.col.basis")],
            basis_rows,
        )
        + "</section>"
    )


def _section_consents(report: RoundReport, w: Words) -> str:
    rows = []
    classes = []
    for c in report.consents:
        if c.granted is None:
            decision = _badge(w("consents.no_answer"), "warn")
        else:
            decision = (
                _badge(w("consents.granted"), "ok")
                if c.granted
                else _badge(w("consents.refused"), "warn")
            )
        signature = {
            VERIFIED: _badge(w("consents.verified"), "ok"),
            INVALID: _badge(w("consents.invalid"), "bad"),
            NO_ANSWER: _badge(w("consents.none_stored"), "warn"),
        }[c.status]
        if c.problem:
            signature += f'<br><span class="reason">{_e(c.problem)}</span>'
        rows.append(
            [
                f"<code>{_e(c.partner_id)}</code>",
                decision,
                _e(c.reason) if c.reason else _DASH,
                _e(c.legal_basis) if c.legal_basis else _DASH,
                _e(_when(w, c.decided_at)) if c.decided_at else _DASH,
                signature,
            ]
        )
        classes.append("bad-row" if c.status == INVALID else "")
    return (
        f'<section id="consents"><h2>{_e(w("consents.title"))}</h2>'
        f"<p>{_e(w('consents.intro'))}</p>"
        + _table(
            w("consents.caption"),
            [
                w("consents.col.partner"),
                w("consents.col.decision"),
                w("consents.col.reason"),
                w("consents.col.basis"),
                w("consents.col.decided"),
                w("consents.col.signature"),
            ],
            rows,
            row_classes=classes,
            css_class="wide",
        )
        + "</section>"
    )


def _section_sizes(report: RoundReport, w: Words) -> str:
    prev = report.previous_round
    intro = (
        w(
            "sizes.previous",
            round=f"<code>{_e(prev.id)}</code>",
            when=_e(_when(w, prev.created_at)),
        )
        if prev is not None
        else _e(w("sizes.no_previous"))
    )
    rows = []
    classes = []
    unreported = False
    for s in report.sizes:
        if not s.contributed:
            rows.append(
                [f"<code>{_e(s.partner_id)}</code>", _muted(w("sizes.not_contributed"))]
                + [_DASH] * 5
            )
            classes.append("")
            continue
        if s.previous is None:
            change = _muted(w("sizes.new")) if prev is not None else "—"
        else:
            delta = s.change or 0
            frac = s.change_fraction
            change = f"{delta:+d}" + (
                f" ({_e(w.percent(frac, signed=True))})" if frac is not None else ""
            )
        if s.warnings:
            change += "".join(
                f'<br><span class="warn-text">⚠ {_e(w.notice(n))}</span>' for n in s.warnings
            )
        if s.objected is None:
            unreported = True
            objected = _muted(w("sizes.not_reported") + " *")
        else:
            objected = _e(w.number(s.objected))
        rows.append(
            [
                f"<code>{_e(s.partner_id)}</code>",
                _e(w.number(s.set_size)),
                _e(w.number(s.previous)) if s.previous is not None else "—",
                change,
                _e(w.number(s.excluded)) + (" *" if s.objected is None else ""),
                objected,
                _e(w.number(s.invalid)),
            ]
        )
        classes.append("warn-row" if s.warnings else "")
    limits = ""
    if report.purpose is not None:
        limits = _t(
            w,
            "sizes.limits",
            growth=GROWTH_WARNING,
            near=NEAR_MAX_WARNING,
            maximum=w.number(report.purpose.max_set_size),
        )
    notes = f'<p class="small">{_e(w("sizes.kept_note"))}</p>'
    if unreported:
        notes += f'<p class="small">* {_e(w("sizes.not_reported_note"))}</p>'
    return (
        f'<section id="sizes"><h2>{_e(w("sizes.title"))}</h2>'
        f"<p>{intro}{limits}</p>"
        + _table(
            w("sizes.caption"),
            [
                w("sizes.col.partner"),
                w("sizes.col.size"),
                w("sizes.col.previous"),
                w("sizes.col.change"),
                w("sizes.col.excluded"),
                w("sizes.col.objected"),
                w("sizes.col.invalid"),
            ],
            rows,
            numeric=(1, 2, 4, 5, 6),
            row_classes=classes,
        )
        + notes
        + "</section>"
    )


def _section_bilateral(report: RoundReport, w: Words) -> str:
    """A two-party round: what the client learned (the intersection, or its size) and that
    the server learned the client's set size only; no threshold, no histogram."""
    p = report.purpose
    head = f'<section id="results"><h2>{_e(w("bilateral.title"))}</h2>'
    sizes = {s.partner_id: s for s in report.sizes}
    if p is None or p.bilateral is None or report.round.state != "completed":
        state = _state(w, report.round.state)
        return head + f"<p>{_e(w('bilateral.none', state=state))}</p></section>"
    b = p.bilateral
    client = sizes.get(b.client_partner)
    server = sizes.get(b.server_partner)
    found = client.flagged if client is not None else 0
    client_size = client.set_size if client is not None else 0
    learned_client = w(
        "bilateral.client.size" if b.size_only else "bilateral.client.records",
        count=w.number(found),
    )
    rows = [
        [
            f"<code>{_e(b.client_partner)}</code>",
            _e(w("bilateral.role.client")),
            _e(w.number(client_size)),
            f"<strong>{_e(learned_client)}</strong>",
        ],
        [
            f"<code>{_e(b.server_partner)}</code>",
            _e(w("bilateral.role.server")),
            _e(w.number(server.set_size if server is not None else 0)),
            _e(w("bilateral.server", count=w.number(client_size))),
        ],
    ]
    return (
        head
        + f"<p>{_e(w('bilateral.intro'))}</p>"
        + _table(
            w("bilateral.caption"),
            [
                w("bilateral.col.partner"),
                w("bilateral.col.role"),
                w("bilateral.col.set"),
                w("bilateral.col.learned"),
            ],
            rows,
            numeric=(2,),
            css_class="wide",
        )
        + "</section>"
    )


def _section_results(report: RoundReport, w: Words) -> str:
    flagged_rows = []
    for s in report.sizes:
        if not s.contributed:
            continue
        share = w.percent(s.flagged / s.set_size) if s.set_size else "—"
        flagged_rows.append(
            [f"<code>{_e(s.partner_id)}</code>", _e(w.number(s.flagged)), _e(share)]
        )
    if not report.histogram:  # the tally never ran
        state = _state(w, report.round.state)
        return (
            f'<section id="results"><h2>{_e(w("results.title"))}</h2>'
            f"<p>{_e(w('results.none', state=state))}</p></section>"
        )
    n_partners = len(report.manifest.partners) if report.manifest is not None else 0
    hist = dict(report.histogram)
    top = max([n_partners, *hist]) if hist or n_partners else 0
    buckets = [(k, hist.get(k, 0)) for k in range(1, top + 1)]
    hist_rows = [
        [
            _e(k),
            _e(w.number(v)),
            _badge(w("results.hist.flagged"), "bad")
            if k >= report.threshold
            else _muted(w("results.hist.no")),
        ]
        for k, v in buckets
    ]
    return (
        f'<section id="results"><h2>{_e(w("results.title"))}</h2>'
        + _table(
            w("results.caption", threshold=report.threshold),
            [w("results.col.partner"), w("results.col.flagged"), w("results.col.share")],
            flagged_rows,
            numeric=(1, 2),
        )
        + f'<div class="keep"><h3>{_e(w("results.hist.title"))}</h3>'
        f"<p>{_e(w('results.hist.intro', threshold=report.threshold))}</p>"
        + _histogram_svg(w, buckets, report.threshold)
        + "</div>"
        + _table(
            w("results.hist.caption"),
            [
                w("results.hist.col.holders"),
                w("results.hist.col.households"),
                w("results.hist.col.flagged"),
            ],
            hist_rows,
            numeric=(0, 1),
        )
        + "</section>"
    )


def _histogram_svg(w: Words, buckets: Sequence[tuple[int, int]], threshold: int) -> str:
    """An inline SVG bar chart: one bar per number of holders, its count above it."""
    if not buckets:
        return ""
    width, height = 720, 280
    left, right, top, bottom = 56, 16, 48, 52
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(v for _k, v in buckets) or 1
    slot = plot_w / len(buckets)
    bar = min(80.0, slot * 0.6)

    def held(k: int, v: int) -> str:
        return w("chart.desc.one" if k == 1 else "chart.desc.many", count=v, holders=k)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="hist-title hist-desc">',
        f'<title id="hist-title">{_e(w("chart.title"))}</title>',
        '<desc id="hist-desc">' + _e("; ".join(held(k, v) for k, v in buckets)) + "</desc>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" '
        'stroke="#444" stroke-width="1"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#444" '
        'stroke-width="1"/>',
        f'<text x="{left - 8}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>',
        f'<text x="{left - 8}" y="{top + 4}" text-anchor="end" class="tick">'
        f"{_e(w.number(peak))}</text>",
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
            f"<title>{_e(held(k, v))}</title></rect>"
        )
        cx = x + bar / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{y - 6:.1f}" text-anchor="middle" class="value">'
            f"{_e(w.number(v))}</text>"
        )
        parts.append(
            f'<text x="{cx:.1f}" y="{top + plot_h + 18}" text-anchor="middle" class="tick">'
            f"{_e(k)}</text>"
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 10}" text-anchor="middle" '
        f'class="axis">{_e(w("chart.axis"))}</text>'
    )
    parts.append(
        f'<rect class="bar flagged" x="{left + 12}" y="6" width="12" height="12"/>'
        f'<text x="{left + 30}" y="17" class="legend">'
        f"{_e(w('chart.legend', threshold=threshold))}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _section_phases(report: RoundReport, w: Words) -> str:
    if not report.phases:
        return (
            f'<section id="phases"><h2>{_e(w("phases.title"))}</h2>'
            f"<p>{_e(w('phases.none'))}</p></section>"
        )
    total = sum(report.phases.values()) or 1.0
    rows = []
    for phase in in_protocol_order(report.phases):
        seconds = report.phases[phase]
        rows.append(
            [
                _e(_phase(w, phase)),
                _e(w.decimal(seconds, 3)),
                f'<span class="meter"><span style="width:{100 * seconds / total:.1f}%"></span>'
                f"</span> {_e(w.percent(seconds / total, places=0))}",
            ]
        )
    if report.seconds is not None:
        rows.append(
            [f"<strong>{_e(w('phases.total'))}</strong>", _e(w.decimal(report.seconds, 3)), ""]
        )
    return (
        f'<section id="phases"><h2>{_e(w("phases.title"))}</h2>'
        + _table(
            w("phases.caption"),
            [w("phases.col.phase"), w("phases.col.seconds"), w("phases.col.share")],
            rows,
            numeric=(1,),
        )
        + "</section>"
    )


def _section_events(report: RoundReport, w: Words) -> str:
    bad = report.audit.first_bad_seq
    rows = []
    classes = []
    for ev in report.events:
        if report.audit.ok or bad is None or ev.seq < bad:
            mark = '<span class="ok-text">✓</span>'
            cls = ""
        elif ev.seq == bad:
            mark = f'<span class="bad-text nowrap">{_e(w("events.broken"))}</span>'
            cls = "bad-row"
        else:
            mark = f'<span class="warn-text">{_e(w("events.unverified"))}</span>'
            cls = "warn-row"
        via = _e(w("events.via", access_point=ev.access_point))
        rows.append(
            [
                _e(ev.seq),
                "<br>".join(f'<span class="nowrap">{_e(t)}</span>' for t in ev.time.split("T")),
                f'<code class="nowrap">{_e(ev.event)}</code>',
                _e(ev.actor) + f'<br><span class="muted small">{via}</span>',
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
        note = f"<p>{_e(w('events.outside', seq=bad))}</p>"
    return (
        f'<section id="events"><h2>{_e(w("events.title"))}</h2>'
        f"<p>{_e(w('events.actions'))}</p>"
        + note
        + _table(
            w("events.caption", count=len(report.events)),
            [
                w("events.col.seq"),
                w("events.col.time"),
                w("events.col.event"),
                w("events.col.actor"),
                w("events.col.on_behalf"),
                w("events.col.action"),
                w("events.col.basis"),
                w("events.col.details"),
                w("events.col.chain"),
            ],
            rows,
            numeric=(0,),
            row_classes=classes,
            css_class="wide events",
        )
        + "</section>"
    )
