"""Every visible string of the privacy officer's report, in Dutch and English, from one table.

`WORDS` holds one dict per language with the same keys; `Words` picks one, fills in
a template's fields and writes dates and numbers the way that language does ("1 december
2026" in Dutch; ISO dates in English, as the English report always had). A warning is
gathered as a `Notice` (a key and its fields), so the report, its summary and the CLI say
it in the report's language. Values taken from the database (partner ids, reasons given,
event names and details, messages of the verifier) are shown as they were stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "WORDS", "Notice", "Words"]

DEFAULT_LANGUAGE: Final = "nl"

_NL: Final[dict[str, str]] = {
    # page frame
    "page.title": "Kruispunt rapport van ronde {round}",
    "page.kicker": "Kruispunt · rapport voor de functionaris gegevensbescherming (FG)",
    "page.heading": "Ronde",
    "page.footer": (
        "Gemaakt op {when} uit de database van de coördinator van netwerk {network}. Alleen "
        "totalen: de coördinator slaat nooit een identificerend gegeven op, dus deze pagina "
        "bevat er geen."
    ),
    # header
    "header.initiated_by": "Gestart door",
    "header.reason": "Opgegeven reden",
    "header.no_reason": "geen reden opgegeven",
    "header.cancelled_by": "Geannuleerd door",
    "header.network": "Netwerk",
    "header.purpose": "Doel (doelbinding)",
    "header.state": "Status",
    "header.started": "Gestart",
    "header.finished": "Afgerond",
    "header.manifest_sha256": "SHA-256 van het manifest",
    "header.protocol": "Protocolversie",
    "header.manifest_unreadable": "manifest onleesbaar",
    "header.expires": "Manifest verloopt",
    "header.partners": "Partners (volgorde in de ring)",
    "header.partners_bilateral": "Partners (cliënt, server)",
    "header.source_registry": "uit het register (manifest onleesbaar)",
    "header.seconds": "{seconds} s",
    # round states
    "state.completed": "afgerond",
    "state.running": "bezig",
    "state.refused": "geweigerd",
    "state.aborted": "afgebroken",
    "state.failed": "mislukt",
    # outcome of a round that did not complete
    "outcome.refused.title": "Ronde geweigerd",
    "outcome.refused.text": (
        "Er zijn geen gegevens uitgewisseld: niet elke partner gaf toestemming."
    ),
    "outcome.refused.partner": "{partner} weigerde: {reason}",
    "outcome.refused.coordinator": "Reden van de coördinator: {reason}",
    "outcome.failed.title": "Ronde mislukt",
    "outcome.failed.text": "De ronde is afgebroken door een fout; er zijn geen resultaten "
    "gepubliceerd tenzij hieronder bij verwijdering vermeld.",
    "outcome.aborted.title": "Ronde afgebroken",
    "outcome.aborted.text": "De ronde is gestopt voordat resultaten werden gepubliceerd.",
    "outcome.reason": "Reden: {reason}",
    # audit status
    "audit.ok.title": "Auditlog: OK",
    "audit.ok.text": (
        "De hele auditketen klopt: <strong>{count} gebeurtenissen</strong>, elke hashkoppeling "
        "en Ed25519-handtekening gecontroleerd met de sleutel van de coördinator {key}."
    ),
    "audit.bad.title": "Auditlog: GEBROKEN bij gebeurtenis seq {seq}",
    "audit.bad.text": (
        "De {count} gebeurtenissen ervoor kloppen met sleutel {key}; vanaf seq {seq} is niets "
        "meer te vertrouwen. Meld dit bij de beveiligingsfunctionaris van de coördinator."
    ),
    # attention
    "attention.title": "Aandachtspunten",
    "attention.none": (
        "Geen waarschuwingen: de toestemmingen kloppen en geen setgrootte veranderde opvallend."
    ),
    "attention.count.one": "1 waarschuwing:",
    "attention.count.many": "{count} waarschuwingen:",
    # notices (warnings)
    "notice.audit_broken": "auditlog GEBROKEN bij gebeurtenis seq {seq}: {reason}",
    "notice.manifest_unreadable": (
        "het opgeslagen manifest is onleesbaar: het doel komt uit het register"
    ),
    "notice.consent_invalid": "toestemming van {partner} is ONGELDIG: {problem}",
    "notice.set_grew": (
        "set groeide {growth:.0%} sinds de vorige afgeronde ronde ({previous} naar {size}; "
        "waarschuwing boven +{limit:.0%})"
    ),
    "notice.near_max": (
        "setgrootte {size} ligt boven {limit:.0%} van het maximum van het doel ({maximum})"
    ),
    "notice.size_differs": (
        "opgeslagen setgrootte {size} verschilt van de {signed} in de ondertekende toestemming"
    ),
    "notice.head_missing": (
        "{partner} ondertekende in zijn toestemming auditkop {seq} van de coördinator, en dit "
        "auditlog bevat die niet: afgekapt of herschreven"
    ),
    "notice.deletion_invalid": "verwijderingsbewijs van {partner} is ONGELDIG: {problem}",
    "notice.deletion_overdue": (
        "resultaten hadden uiterlijk {due} verwijderd moeten zijn en er is geen "
        "verwijderingsbewijs binnen"
    ),
    "notice.refused_by": "{partner} weigerde toestemming: {reason}",
    "notice.refused": "de ronde is geweigerd: {reason}",
    "notice.failed": "de ronde is mislukt: {reason}",
    "notice.aborted": "de ronde is afgebroken: {reason}",
    "notice.purpose_changed": (
        "doel {purpose} is gewijzigd sinds de vorige ronde ervan, {previous} (versie {old} "
        "naar {new}): {fields}"
    ),
    "notice.purpose_unknown_version": (
        "doel {purpose} is gewijzigd sinds de vorige ronde ervan, {previous} (versie {old} "
        "naar {new}); versie {old} staat niet in de geschiedenis, dus de gewijzigde velden "
        "zijn onbekend"
    ),
    # deletions
    "deletions.title": "Verwijdering van resultaten (bewaartermijn)",
    "deletions.intro": (
        "Elke partner verwijdert zijn resultaten {retention} na levering en ondertekent een "
        "verwijderingsbewijs, dat de coördinator bij het volgende contact ophaalt en "
        "controleert met de geregistreerde sleutel van de partner."
    ),
    "deletions.retention_days": "{days} dagen",
    "deletions.retention_unknown": "na de bewaartermijn van het doel",
    "deletions.caption": "Verwijdering per partner",
    "deletions.col.partner": "Partner",
    "deletions.col.deletion": "Verwijdering",
    "deletions.col.evidence": "Bewijs",
    "deletions.nothing": "geen resultaten geleverd: niets te verwijderen",
    "deletions.invalid": "bewijs ONGELDIG",
    "deletions.deleted_on": "verwijderd op {date}",
    "deletions.verified": "ondertekend bewijs gecontroleerd",
    "deletions.node_head": "auditkop van de node {head}",
    "deletions.received": "ontvangen {when}",
    "deletions.overdue": "TE LAAT: uiterlijk {date}",
    "deletions.no_receipt": "geen verwijderingsbewijs ontvangen",
    "deletions.due_by": "nog te doen, uiterlijk {date}",
    "deletions.due": "nog te doen",
    "deletions.running": "nog geen verwijderingsbewijs (bewaartermijn loopt)",
    # heads
    "heads.title": "Bewaarde auditkoppen",
    "heads.intro": (
        "Elke kant bewaart de kop van de auditketen van de ander, zodat geen van beide logs "
        "later ongezien kan worden afgekapt of herschreven ({command} controleert ze tegen de "
        "logs van de nodes)."
    ),
    "heads.none_signed": "geen ondertekend",
    "heads.on_log": "in dit log",
    "heads.not_on_log": "NIET in dit log: afgekapt of herschreven",
    "heads.caption": "Auditkoppen per partner",
    "heads.col.partner": "Partner",
    "heads.col.coordinator": "Kop van de coördinator, ondertekend in de toestemming",
    "heads.col.consent": "Kop van de node in de toestemming",
    "heads.col.delivery": "Kop van de node in het leveringsbewijs",
    "heads.col.deletion": "Kop van de node in het verwijderingsbewijs",
    "heads.text": "seq {seq} · {hash}…",
    # purpose and legal basis
    "legal.title": "Doel en grondslag (doelbinding)",
    "legal.title_short": "Grondslag",
    "legal.unreadable": "Het doel van deze ronde is onleesbaar.",
    "legal.covenant": "Convenant",
    "legal.dpia": "DPIA-referentie",
    "legal.kind": "Soort identificerend gegeven",
    "legal.mode": "Werkwijze",
    "legal.mode.network": "netwerk (drempel over meerdere partners)",
    "legal.mode.bilateral": "tweepartijen (openmined-psi, cliënt en server)",
    "legal.threshold": "Drempel",
    "legal.threshold.text": "gesignaleerd wanneer minstens <strong>{threshold}</strong> "
    "partners het huishouden kennen",
    "legal.disclosure": "Mate van openbaarmaking",
    "legal.disclosure.count": "{level} (partners krijgen hun gesignaleerde records en het aantal)",
    "legal.disclosure.partners": (
        "{level} (partners krijgen ook te weten welke partners die records ook kennen)"
    ),
    "legal.bilateral.client": "Cliënt (krijgt de uitkomst)",
    "legal.bilateral.server": "Server",
    "legal.bilateral.learns": "De cliënt krijgt",
    "legal.bilateral.records": "de records uit de doorsnede",
    "legal.bilateral.size_only": "alleen de grootte van de doorsnede",
    "legal.max_set_size": "Maximale setgrootte",
    "legal.retention": "Bewaartermijn van resultaten",
    "legal.retention.days": "{days} dagen",
    "legal.retention.by": " — partners moeten de resultaten uiterlijk <strong>{date}</strong> "
    "verwijderen",
    "legal.retention.none": " — er zijn geen resultaten geleverd (ronde {state})",
    "legal.caption": "Grondslag per partner, zoals ondertekend in het manifest",
    "legal.col.partner": "Partner",
    "legal.col.basis": "Grondslag",
    # consents
    "consents.title": "Toestemmingen",
    "consents.intro": (
        "Elke opgeslagen toestemming wordt gecontroleerd met de geregistreerde Ed25519-sleutel "
        "van de partner en moet precies het manifest van deze ronde beantwoorden (de SHA-256 "
        "ervan)."
    ),
    "consents.caption": "Toestemming per partner",
    "consents.col.partner": "Partner",
    "consents.col.decision": "Besluit",
    "consents.col.reason": "Reden",
    "consents.col.basis": "Grondslag volgens de partner",
    "consents.col.decided": "Besloten",
    "consents.col.signature": "Handtekening",
    "consents.no_answer": "geen antwoord",
    "consents.granted": "gegeven",
    "consents.refused": "geweigerd",
    "consents.verified": "gecontroleerd",
    "consents.invalid": "ONGELDIG",
    "consents.none_stored": "niet opgeslagen",
    # set sizes
    "sizes.title": "Setgroottes",
    "sizes.previous": "Vergeleken met de vorige afgeronde ronde van dit doel, {round} ({when}).",
    "sizes.no_previous": "Er is geen eerdere afgeronde ronde van dit doel om mee te vergelijken.",
    "sizes.limits": (
        " Een waarschuwing verschijnt wanneer een set meer dan {growth:.0%} groeide of boven "
        "{near:.0%} van de maximale setgrootte ({maximum}) ligt: een partner kan aftasten door "
        "identificerende gegevens toe te voegen die hij niet heeft."
    ),
    "sizes.caption": "Records die elke partner inbracht",
    "sizes.col.partner": "Partner",
    "sizes.col.size": "Setgrootte",
    "sizes.col.previous": "Vorige",
    "sizes.col.change": "Verandering",
    "sizes.col.excluded": "Uitsluitingslijst",
    "sizes.col.objected": "Bezwaar gemaakt",
    "sizes.col.invalid": "Ongeldige regels",
    "sizes.not_contributed": "niet ingebracht",
    "sizes.new": "nieuw",
    "sizes.not_reported": "niet apart gemeld",
    "sizes.not_reported_note": (
        "Niet apart gemeld: de node van die partner telt bezwaren nog mee in de uitsluitingslijst."
    ),
    "sizes.kept_note": (
        "Regels op de uitsluitingslijst, regels van mensen die bezwaar maakten en ongeldige "
        "regels verlaten de partner nooit; de aantallen staan in de ondertekende toestemming."
    ),
    # results, network mode
    "results.title": "Gesignaleerde records en overlap",
    "results.none": "Er is niet gematcht (ronde {state}).",
    "results.caption": "Gesignaleerde records per partner (drempel {threshold})",
    "results.col.partner": "Partner",
    "results.col.flagged": "Gesignaleerd",
    "results.col.share": "Deel van de set",
    "results.hist.title": "Overlaphistogram",
    "results.hist.intro": (
        "Huishoudens (pseudonieme tags van deze ronde) naar het aantal partners dat ze kent; "
        "die bij {threshold} of meer partners bekend zijn, worden gesignaleerd."
    ),
    "results.hist.caption": "Overlaphistogram (als tabel)",
    "results.hist.col.holders": "Bekend bij partners",
    "results.hist.col.households": "Huishoudens",
    "results.hist.col.flagged": "Gesignaleerd",
    "results.hist.flagged": "gesignaleerd",
    "results.hist.no": "nee",
    "chart.title": "Overlaphistogram",
    "chart.desc.one": "{count} huishoudens bekend bij {holders} partner",
    "chart.desc.many": "{count} huishoudens bekend bij {holders} partners",
    "chart.axis": "aantal partners dat het huishouden kent",
    "chart.legend": "gesignaleerd: bekend bij minstens {threshold} partners",
    # results, two-party mode
    "bilateral.title": "Uitkomst van de tweepartijenronde",
    "bilateral.none": "Er is niet gematcht (ronde {state}).",
    "bilateral.intro": (
        "Een tweepartijenronde kent geen drempel en geen overlaphistogram: de cliënt krijgt "
        "de doorsnede van beide sets, de server alleen de setgrootte van de cliënt."
    ),
    "bilateral.caption": "Wat elke partner te weten kwam",
    "bilateral.col.partner": "Partner",
    "bilateral.col.role": "Rol",
    "bilateral.col.set": "Eigen setgrootte",
    "bilateral.col.learned": "Kwam te weten",
    "bilateral.role.client": "cliënt",
    "bilateral.role.server": "server",
    "bilateral.client.records": "{count} records in de doorsnede (welke van de eigen records)",
    "bilateral.client.size": "de grootte van de doorsnede: {count} (niet welke records)",
    "bilateral.server": "alleen de setgrootte van de cliënt: {count}",
    # phases
    "phases.title": "Duur per fase",
    "phases.none": "Geen protocolfase is in deze ronde afgerond.",
    "phases.caption": "Seconden per protocolfase",
    "phases.col.phase": "Fase",
    "phases.col.seconds": "Seconden",
    "phases.col.share": "Aandeel",
    "phases.total": "hele ronde",
    "phase.propose": "voorstel en toestemming",
    "phase.blind": "blinderen",
    "phase.evaluate": "evalueren",
    "phase.finalize": "afronden",
    "phase.reveal": "onthullen",
    "phase.tally": "tellen",
    "phase.request": "verzoek",
    "phase.response": "antwoord",
    "phase.setup": "opzet",
    "phase.result": "uitkomst",
    "phase.deliver": "levering",
    # events
    "events.title": "Auditgebeurtenissen van deze ronde",
    "events.actions": (
        "Handeling: C = aanmaken, R = lezen, U = wijzigen, D = verwijderen, E = uitvoeren "
        "(NEN 7513)."
    ),
    "events.outside": (
        "De keten breekt bij seq {seq}, buiten de gebeurtenissen van deze ronde; de "
        "gebeurtenissen van deze ronde ervoor kloppen."
    ),
    "events.caption": "{count} gebeurtenissen",
    "events.col.seq": "Seq",
    "events.col.time": "Tijd (UTC)",
    "events.col.event": "Gebeurtenis",
    "events.col.actor": "Uitvoerder (toegangspunt)",
    "events.col.on_behalf": "Namens",
    "events.col.action": "Handeling",
    "events.col.basis": "Grondslag",
    "events.col.details": "Details",
    "events.col.chain": "Keten",
    "events.via": "via {access_point}",
    "events.broken": "✗ GEBROKEN",
    "events.unverified": "niet gecontroleerd",
}

_EN: Final[dict[str, str]] = {
    "page.title": "Kruispunt round report {round}",
    "page.kicker": "Kruispunt · privacy officer report (FG/DPO)",
    "page.heading": "Round",
    "page.footer": (
        "Generated {when} from the coordinator database of network {network}. Aggregates "
        "only: the coordinator never stores an identifier, so this page holds none."
    ),
    "header.initiated_by": "Initiated by",
    "header.reason": "Reason given",
    "header.no_reason": "no reason given",
    "header.cancelled_by": "Cancelled by",
    "header.network": "Network",
    "header.purpose": "Purpose (doelbinding)",
    "header.state": "State",
    "header.started": "Started",
    "header.finished": "Finished",
    "header.manifest_sha256": "Manifest SHA-256",
    "header.protocol": "Protocol version",
    "header.manifest_unreadable": "manifest unreadable",
    "header.expires": "Manifest expires",
    "header.partners": "Partners (ring order)",
    "header.partners_bilateral": "Partners (client, server)",
    "header.source_registry": "registry (manifest unreadable)",
    "header.seconds": "{seconds} s",
    "state.completed": "completed",
    "state.running": "running",
    "state.refused": "refused",
    "state.aborted": "aborted",
    "state.failed": "failed",
    "outcome.refused.title": "Round refused",
    "outcome.refused.text": "No data was exchanged: not every partner consented.",
    "outcome.refused.partner": "{partner} refused: {reason}",
    "outcome.refused.coordinator": "The coordinator's reason: {reason}",
    "outcome.failed.title": "Round failed",
    "outcome.failed.text": "The round ended in an error; no results were published unless "
    "the deletions below say otherwise.",
    "outcome.aborted.title": "Round aborted",
    "outcome.aborted.text": "The round was stopped before results were published.",
    "outcome.reason": "Reason: {reason}",
    "audit.ok.title": "Audit log: OK",
    "audit.ok.text": (
        "The whole audit chain verifies: <strong>{count} events</strong>, every hash link and "
        "Ed25519 signature checked under the coordinator key {key}."
    ),
    "audit.bad.title": "Audit log: BROKEN at event seq {seq}",
    "audit.bad.text": (
        "{count} events before it verify under key {key}; nothing from seq {seq} on can be "
        "trusted. Report this to the coordinator's security officer."
    ),
    "attention.title": "Attention",
    "attention.none": "No warnings: consents verify and no set size changed abnormally.",
    "attention.count.one": "1 warning:",
    "attention.count.many": "{count} warnings:",
    "notice.audit_broken": "audit log BROKEN at event seq {seq}: {reason}",
    "notice.manifest_unreadable": (
        "the stored manifest cannot be read: purpose shown from the registry"
    ),
    "notice.consent_invalid": "consent of {partner} is INVALID: {problem}",
    "notice.set_grew": (
        "set grew by {growth:.0%} since the previous completed round ({previous} to {size}; "
        "warning above +{limit:.0%})"
    ),
    "notice.near_max": "set size {size} is above {limit:.0%} of the purpose's maximum ({maximum})",
    "notice.size_differs": (
        "stored set size {size} differs from the {signed} in the signed consent"
    ),
    "notice.head_missing": (
        "{partner} signed coordinator audit head {seq} in its consent, and this audit log does "
        "not hold it: cut off or rewritten"
    ),
    "notice.deletion_invalid": "deletion receipt of {partner} is INVALID: {problem}",
    "notice.deletion_overdue": (
        "results were due for deletion by {due} and no deletion receipt has arrived"
    ),
    "notice.refused_by": "{partner} refused consent: {reason}",
    "notice.refused": "the round was refused: {reason}",
    "notice.failed": "the round failed: {reason}",
    "notice.aborted": "the round was aborted: {reason}",
    "notice.purpose_changed": (
        "purpose {purpose} changed since its previous round, {previous} (version {old} to "
        "{new}): {fields}"
    ),
    "notice.purpose_unknown_version": (
        "purpose {purpose} changed since its previous round, {previous} (version {old} to "
        "{new}); version {old} is not in the history, so which fields changed is unknown"
    ),
    "deletions.title": "Deletion of results (bewaartermijn)",
    "deletions.intro": (
        "Each partner deletes its results {retention} after delivery and signs a deletion "
        "receipt, which the coordinator collects at its next contact and checks against the "
        "partner's registered key."
    ),
    "deletions.retention_days": "{days} days",
    "deletions.retention_unknown": "at the end of the purpose's retention",
    "deletions.caption": "Deletion per partner",
    "deletions.col.partner": "Partner",
    "deletions.col.deletion": "Deletion",
    "deletions.col.evidence": "Evidence",
    "deletions.nothing": "no results delivered: nothing to delete",
    "deletions.invalid": "receipt INVALID",
    "deletions.deleted_on": "deleted on {date}",
    "deletions.verified": "signed receipt verified",
    "deletions.node_head": "node audit head {head}",
    "deletions.received": "received {when}",
    "deletions.overdue": "OVERDUE: due by {date}",
    "deletions.no_receipt": "no deletion receipt received",
    "deletions.due_by": "still due by {date}",
    "deletions.due": "still due",
    "deletions.running": "no deletion receipt yet (retention running)",
    "heads.title": "Witnessed audit heads",
    "heads.intro": (
        "Each side keeps the other's audit chain head, so neither log can later be cut off or "
        "rewritten unseen ({command} checks them against the nodes' logs)."
    ),
    "heads.none_signed": "none signed",
    "heads.on_log": "on this log",
    "heads.not_on_log": "NOT on this log: cut off or rewritten",
    "heads.caption": "Audit heads per partner",
    "heads.col.partner": "Partner",
    "heads.col.coordinator": "Coordinator head signed in its consent",
    "heads.col.consent": "Node head in its consent",
    "heads.col.delivery": "Node head in its delivery receipt",
    "heads.col.deletion": "Node head in its deletion receipt",
    "heads.text": "seq {seq} · {hash}…",
    "legal.title": "Purpose and legal basis (doelbinding en grondslag)",
    "legal.title_short": "Legal basis (grondslag)",
    "legal.unreadable": "The purpose of this round cannot be read.",
    "legal.covenant": "Covenant (convenant)",
    "legal.dpia": "DPIA reference",
    "legal.kind": "Identifier kind",
    "legal.mode": "Mode",
    "legal.mode.network": "network (a threshold over several partners)",
    "legal.mode.bilateral": "two-party (openmined-psi, client and server)",
    "legal.threshold": "Threshold",
    "legal.threshold.text": "flagged when held by at least <strong>{threshold}</strong> partners",
    "legal.disclosure": "Disclosure level",
    "legal.disclosure.count": "{level} (partners learn their flagged records and the count)",
    "legal.disclosure.partners": "{level} (partners also learn which partners hold them too)",
    "legal.bilateral.client": "Client (learns the answer)",
    "legal.bilateral.server": "Server",
    "legal.bilateral.learns": "The client learns",
    "legal.bilateral.records": "the records in the intersection",
    "legal.bilateral.size_only": "only the size of the intersection",
    "legal.max_set_size": "Maximum set size",
    "legal.retention": "Result retention (bewaartermijn)",
    "legal.retention.days": "{days} days",
    "legal.retention.by": " — partners must delete the results by <strong>{date}</strong>",
    "legal.retention.none": " — no results were delivered (round {state})",
    "legal.caption": "Legal basis per partner, as signed into the manifest",
    "legal.col.partner": "Partner",
    "legal.col.basis": "Legal basis",
    "consents.title": "Consents (toestemmingen)",
    "consents.intro": (
        "Each stored consent is checked against the partner's registered Ed25519 key and must "
        "answer exactly this round's manifest (its SHA-256)."
    ),
    "consents.caption": "Consent per partner",
    "consents.col.partner": "Partner",
    "consents.col.decision": "Decision",
    "consents.col.reason": "Reason",
    "consents.col.basis": "Partner's stated basis",
    "consents.col.decided": "Decided",
    "consents.col.signature": "Signature",
    "consents.no_answer": "no answer",
    "consents.granted": "granted",
    "consents.refused": "refused",
    "consents.verified": "verified",
    "consents.invalid": "INVALID",
    "consents.none_stored": "none stored",
    "sizes.title": "Set sizes",
    "sizes.previous": "Compared with the previous completed round of this purpose, {round} "
    "({when}).",
    "sizes.no_previous": "There is no earlier completed round of this purpose to compare with.",
    "sizes.limits": (
        " A warning shows when a set grew by more than {growth:.0%} or is above {near:.0%} of "
        "the maximum set size ({maximum}): a partner can probe by adding identifiers it does "
        "not hold."
    ),
    "sizes.caption": "Records each partner contributed",
    "sizes.col.partner": "Partner",
    "sizes.col.size": "Set size",
    "sizes.col.previous": "Previous",
    "sizes.col.change": "Change",
    "sizes.col.excluded": "Exclusion list",
    "sizes.col.objected": "Objected",
    "sizes.col.invalid": "Invalid rows",
    "sizes.not_contributed": "not contributed",
    "sizes.new": "new",
    "sizes.not_reported": "not reported apart",
    "sizes.not_reported_note": (
        "Not reported apart: that partner's node still counts objections under the exclusion list."
    ),
    "sizes.kept_note": (
        "Rows on the exclusion list, rows of people who objected and invalid rows never leave "
        "the partner; the counts are from its signed consent."
    ),
    "results.title": "Flagged records and overlap",
    "results.none": "No matching took place (round {state}).",
    "results.caption": "Flagged records per partner (threshold {threshold})",
    "results.col.partner": "Partner",
    "results.col.flagged": "Flagged",
    "results.col.share": "Share of its set",
    "results.hist.title": "Overlap histogram",
    "results.hist.intro": (
        "Households (pseudonymous tags of this round) by the number of partners that hold "
        "them; those held by {threshold} or more are flagged."
    ),
    "results.hist.caption": "Overlap histogram (table form)",
    "results.hist.col.holders": "Held by partners",
    "results.hist.col.households": "Households",
    "results.hist.col.flagged": "Flagged",
    "results.hist.flagged": "flagged",
    "results.hist.no": "no",
    "chart.title": "Overlap histogram",
    "chart.desc.one": "{count} households held by {holders} partner",
    "chart.desc.many": "{count} households held by {holders} partners",
    "chart.axis": "number of partners holding the household",
    "chart.legend": "flagged: held by at least {threshold} partners",
    "bilateral.title": "Outcome of the two-party round",
    "bilateral.none": "No matching took place (round {state}).",
    "bilateral.intro": (
        "A two-party round has no threshold and no overlap histogram: the client learns the "
        "intersection of both sets, the server only the client's set size."
    ),
    "bilateral.caption": "What each partner learned",
    "bilateral.col.partner": "Partner",
    "bilateral.col.role": "Role",
    "bilateral.col.set": "Own set size",
    "bilateral.col.learned": "Learned",
    "bilateral.role.client": "client",
    "bilateral.role.server": "server",
    "bilateral.client.records": "{count} records in the intersection (which of its own records)",
    "bilateral.client.size": "the size of the intersection: {count} (not which records)",
    "bilateral.server": "only the client's set size: {count}",
    "phases.title": "Phase timings",
    "phases.none": "No protocol phase finished in this round.",
    "phases.caption": "Seconds per protocol phase",
    "phases.col.phase": "Phase",
    "phases.col.seconds": "Seconds",
    "phases.col.share": "Share",
    "phases.total": "whole round",
    "phase.propose": "propose",
    "phase.blind": "blind",
    "phase.evaluate": "evaluate",
    "phase.finalize": "finalize",
    "phase.reveal": "reveal",
    "phase.tally": "tally",
    "phase.request": "request",
    "phase.response": "response",
    "phase.setup": "setup",
    "phase.result": "result",
    "phase.deliver": "deliver",
    "events.title": "Audit events of this round",
    "events.actions": (
        "Action: C = create, R = read, U = update, D = delete, E = execute (NEN 7513)."
    ),
    "events.outside": (
        "The chain breaks at seq {seq}, outside this round's events; this round's events "
        "before it verify."
    ),
    "events.caption": "{count} events",
    "events.col.seq": "Seq",
    "events.col.time": "Time (UTC)",
    "events.col.event": "Event",
    "events.col.actor": "Actor (access point)",
    "events.col.on_behalf": "On behalf of",
    "events.col.action": "Action",
    "events.col.basis": "Basis",
    "events.col.details": "Details",
    "events.col.chain": "Chain",
    "events.via": "via {access_point}",
    "events.broken": "✗ BROKEN",
    "events.unverified": "unverified",
}

#: The report's languages, Dutch first (the default): key -> template, the same keys in each.
WORDS: Final[Mapping[str, Mapping[str, str]]] = {"nl": _NL, "en": _EN}
LANGUAGES: Final = tuple(WORDS)

_MONTHS_NL: Final = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


@dataclass(frozen=True)
class Notice:
    """A warning as gathered: its key in `WORDS` ("notice.<key>"), for a partner or the round.

    Fields are kept as values (a datetime stays a datetime) so each language writes them its
    own way; `partner` set means the warning is about that partner and is said "partner: …".
    """

    key: str
    params: Mapping[str, object] = field(default_factory=dict)
    partner: str = ""


class Words:
    """One language of the report: templates filled in, dates and numbers written its way."""

    def __init__(self, lang: str = DEFAULT_LANGUAGE) -> None:
        if lang not in WORDS:
            raise ValueError(f"report language {lang!r} is not one of {', '.join(LANGUAGES)}")
        self.lang = lang
        self._table = WORDS[lang]

    def __call__(self, key: str, /, **params: object) -> str:
        """The template `key` with `params` filled in (a datetime written as a date)."""
        shown = {k: self.date(v) if isinstance(v, datetime) else v for k, v in params.items()}
        return self._table[key].format(**shown)

    def date(self, moment: datetime) -> str:
        """A day in UTC: "1 december 2026" in Dutch, "2026-12-01" in English."""
        day = moment.astimezone(UTC)
        if self.lang == "nl":
            return f"{day.day} {_MONTHS_NL[day.month - 1]} {day.year}"
        return day.strftime("%Y-%m-%d")

    def moment(self, moment: datetime) -> str:
        """A date and time in UTC, to the second."""
        day = moment.astimezone(UTC)
        return f"{self.date(day)} {day:%H:%M:%S} UTC"

    def number(self, n: int) -> str:
        """Thousands grouped by a narrow no-break space (both languages read it)."""
        return f"{n:,}".replace(",", "\u202f")

    def decimal(self, value: float, places: int) -> str:
        """A decimal number with the language's decimal sign."""
        text = f"{value:.{places}f}"
        return text.replace(".", ",") if self.lang == "nl" else text

    def percent(self, fraction: float, *, places: int = 1, signed: bool = False) -> str:
        """A fraction as a percentage ("+12,5%" in Dutch, "+12.5%" in English)."""
        text = f"{fraction * 100:{'+' if signed else ''}.{places}f}%"
        return text.replace(".", ",") if self.lang == "nl" else text

    def notice(self, notice: Notice) -> str:
        """A gathered warning in this language, prefixed with its partner when it has one."""
        text = self("notice." + notice.key, **notice.params)
        return f"{notice.partner}: {text}" if notice.partner else text
