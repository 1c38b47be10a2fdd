"""Verification without trust: the coordinator's log and the nodes' logs held against each other.

What a partner's privacy officer runs with public material only (`psi-node audit
verify-network`): the coordinator's full export and its audit public key, this
node's own log and key, and any other node's export with that node's key from
the accepted roster. `verify_network` checks, and lists every problem in this order:

1. every hash and signature of each log (`verify_events`; a full log from seq 1);
2. every coordinator head a node witnessed (`manifest.seen` details
   ``coordinator_head``) lies on the coordinator chain: an export cut off before it,
   or rewritten and re-signed from an event before it, lacks it;
3. every node head the coordinator recorded (``node_head`` in its ``consent.*`` and
   ``results.delivered`` details) lies on that node's chain, for each node log given:
   a node log cut off after it lacks it;
4. per round and per node, what the node logged against what the coordinator logged
   about it (`FIELDS`): manifest hash, purpose version, partners, threshold, consent,
   set size, records sent, flagged count, delivered result hash, deletions.

Deletions: a node's ``results.deleted`` (with the digest and time it signed in its
receipt) must match the coordinator's ``deletion.received`` of that round and partner,
and the receipt's node head lies on the node's chain (check 3). A deletion of results
the node never wrote always disagrees; so does a deletion the coordinator records and the
node's log lacks. A deletion the node logged after every head the coordinator has
recorded of it is not yet due at the coordinator (its receipt goes at the next contact):
it is counted as pending, not as a problem. Once the coordinator records a later head of
that node and still has no receipt, it disagrees.

A head witnessed by nobody cannot be checked: events after the last head a node
kept (the end of the newest round) are only held to the per-round comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from kruispunt.audit.event import AuditEvent, ChainHead
from kruispunt.audit.verify import PublicKeys, VerifyReport, verify_events

__all__ = ["FIELDS", "NodeLog", "Problem", "WitnessReport", "verify_network"]

#: The fields compared per round and node, in the order problems are listed.
FIELDS: Final = (
    "manifest_sha256",
    "purpose_version",
    "partners",
    "threshold",
    "consent",
    "set_size",
    "records_sent",
    "flagged_count",
    "delivered",
    "deleted",
)

_MANIFEST_FIELDS: Final = ("manifest_sha256", "purpose_version", "partners", "threshold")
# A node view's note of the seq of its results.deleted event (never compared itself).
_DELETED_SEQ: Final = "deleted_seq"


@dataclass(frozen=True, slots=True)
class NodeLog:
    """One node's audit log as the officer holds it: whose, its events, its public key."""

    partner: str
    events: Sequence[AuditEvent]
    #: Its key, or keys: a partner's roster entry during a rotation lists the previous
    #: one too (either anchors the chain: `kruispunt.audit.handover`).
    public_key: PublicKeys
    label: str = ""

    @property
    def name(self) -> str:
        """How problems name this log."""
        return self.label or f"node {self.partner}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that does not hold: where (a log, a round), which check or field, both sides."""

    kind: str  # "chain", "witnessed_head", "node_head" or "round"
    where: str
    field: str
    node: object = None
    coordinator: object = None
    detail: str = ""

    def describe(self) -> str:
        """One line for a person."""
        if self.kind == "round":
            return (
                f"round {self.where}, {self.field}: node says {self.node!r}, "
                f"coordinator says {self.coordinator!r}"
            )
        return f"{self.where}: {self.detail}"

    def as_dict(self) -> dict[str, object]:
        """JSON-ready."""
        return {
            "kind": self.kind,
            "where": self.where,
            "field": self.field,
            "node": self.node,
            "coordinator": self.coordinator,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class WitnessReport:
    """The outcome: every log's chain verdict, how many heads were checked, every problem."""

    chains: Mapping[str, VerifyReport]
    witnessed_heads: int
    node_heads: int
    rounds: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    #: Deletions nodes logged after the last head of theirs the coordinator recorded.
    pending_deletions: int = 0

    @property
    def ok(self) -> bool:
        """True when every chain verifies, every head is on its chain and the logs agree."""
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        """JSON-ready (for --json)."""
        return {
            "ok": self.ok,
            "chains": {name: report.as_dict() for name, report in self.chains.items()},
            "witnessed_heads_checked": self.witnessed_heads,
            "node_heads_checked": self.node_heads,
            "rounds_compared": self.rounds,
            "deletions_pending": self.pending_deletions,
            "first_problem": self.problems[0].as_dict() if self.problems else None,
            "problems": [p.as_dict() for p in self.problems],
        }

    def describe(self) -> str:
        """Lines for a person: each chain, the heads, the rounds, and the first problem."""
        lines = [report.describe(name) for name, report in self.chains.items()]
        lines.append(
            f"{self.witnessed_heads} coordinator head(s) witnessed by nodes, "
            f"{self.node_heads} node head(s) recorded by the coordinator, checked"
        )
        lines.append(f"{self.rounds} round(s) compared")
        if self.pending_deletions:
            lines.append(
                f"{self.pending_deletions} deletion(s) logged by a node since its last contact "
                "with the coordinator: its receipt goes at the next contact"
            )
        if self.ok:
            lines.append("VERIFIED: the logs are intact and agree")
        else:
            lines.append(f"NOT VERIFIED: {len(self.problems)} problem(s); the first:")
            lines.append("  " + self.problems[0].describe())
            lines.extend("  also: " + p.describe() for p in self.problems[1:10])
        return "\n".join(lines)


def verify_network(
    coordinator_events: Sequence[AuditEvent],
    coordinator_key: Ed25519PublicKey,
    nodes: Sequence[NodeLog],
) -> WitnessReport:
    """Check the coordinator's full log and each node's log, and each against the others.

    See the module docstring for what is checked and in which order problems come.
    """
    chains: dict[str, VerifyReport] = {}
    problems: list[Problem] = []
    coord_report = verify_events(coordinator_events, coordinator_key)
    chains["coordinator log"] = coord_report
    if not coord_report.ok:
        problems.append(_chain_problem("coordinator log", coord_report))
    for node in nodes:
        report = verify_events(node.events, node.public_key)
        chains[node.name] = report
        if not report.ok:
            problems.append(_chain_problem(node.name, report))

    coord_hashes = {e.seq: e.hash for e in coordinator_events}
    witnessed = 0
    for node in nodes:
        for event in node.events:
            if event.event != "manifest.seen":
                continue
            head = ChainHead.from_details(event.details.get("coordinator_head"))
            if head is None:
                continue
            witnessed += 1
            problem = _head_problem(head, coord_hashes, "coordinator log")
            if problem:
                problems.append(
                    Problem(
                        "witnessed_head",
                        "coordinator log",
                        "coordinator_head",
                        node=head.as_details(),
                        coordinator=_found(coord_hashes, head.seq),
                        detail=f"{problem}; {node.name} witnessed it in round {event.round_id} "
                        f"(its event {event.seq})",
                    )
                )

    by_partner = {node.partner: node for node in nodes}
    node_hashes = {node.partner: {e.seq: e.hash for e in node.events} for node in nodes}
    recorded = 0
    # The newest node head the coordinator recorded, per partner: what it has heard since.
    heard: dict[str, int] = {}
    for event in coordinator_events:
        partner = event.details.get("partner")
        if not isinstance(partner, str) or partner not in by_partner:
            continue
        head = ChainHead.from_details(event.details.get("node_head"))
        if head is None:
            continue
        recorded += 1
        heard[partner] = max(heard.get(partner, 0), head.seq)
        name = by_partner[partner].name
        problem = _head_problem(head, node_hashes[partner], name)
        if problem:
            problems.append(
                Problem(
                    "node_head",
                    name,
                    "node_head",
                    node=_found(node_hashes[partner], head.seq),
                    coordinator=head.as_details(),
                    detail=f"{problem}; the coordinator recorded it in round {event.round_id} "
                    f"({event.event}, its event {event.seq})",
                )
            )

    compared: set[str] = set()
    pending = 0
    coord_views = _coordinator_views(coordinator_events)
    for node in nodes:
        mine = _node_views(node.events)
        theirs = coord_views.get(node.partner, {})
        for round_id in dict.fromkeys([*mine, *theirs]):
            compared.add(round_id)
            ours = dict(mine.get(round_id, {}))
            other = theirs.get(round_id, {})
            seq = ours.pop(_DELETED_SEQ, None)
            if (
                isinstance(seq, int)
                and "deleted" not in other
                and "delivered" in ours
                and heard.get(node.partner, 0) < seq
            ):
                # Deleted since the coordinator last heard from this node: not yet due there.
                ours.pop("deleted")
                pending += 1
            # What the manifest said is compared where the node saw the manifest at all: a
            # node the coordinator never reached has nothing to say about it.
            names = FIELDS if "manifest_sha256" in ours else FIELDS[len(_MANIFEST_FIELDS) :]
            for name in names:
                if ours.get(name) != other.get(name):
                    problems.append(
                        Problem(
                            "round",
                            round_id,
                            name,
                            node=ours.get(name),
                            coordinator=other.get(name),
                            detail=f"{node.name} and the coordinator log disagree",
                        )
                    )
    return WitnessReport(
        chains, witnessed, recorded, len(compared), tuple(problems), pending_deletions=pending
    )


def _chain_problem(name: str, report: VerifyReport) -> Problem:
    return Problem(
        "chain",
        name,
        "chain",
        detail=f"BROKEN at event {report.first_bad_seq}: {report.reason}",
    )


def _head_problem(head: ChainHead, hashes: Mapping[int, str], name: str) -> str:
    """Why `head` is not on the chain whose hashes by seq are `hashes`, or ""."""
    if head.seq not in hashes:
        last = max(hashes, default=0)
        return (
            f"{name} lacks event {head.seq}, a head someone kept (it ends at event {last}): "
            "tail cut off"
        )
    if hashes[head.seq] != head.hash:
        return (
            f"{name} event {head.seq} differs from the head someone kept: rewritten from there on"
        )
    return ""


def _found(hashes: Mapping[int, str], seq: int) -> object:
    got = hashes.get(seq)
    return None if got is None else {"seq": seq, "hash": got}


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _names(value: object) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _node_views(events: Iterable[AuditEvent]) -> dict[str, dict[str, object]]:
    """Per round, what this node's log says (the last event of a kind counts)."""
    views: dict[str, dict[str, object]] = {}
    for event in events:
        if not event.round_id:
            continue
        d = event.details
        view = views.setdefault(event.round_id, {})
        if event.event == "manifest.seen":
            view["manifest_sha256"] = d.get("manifest_sha256")
            view["purpose_version"] = _count(d.get("purpose_version"))
            view["partners"] = _names(d.get("partners"))
            if "threshold" in d:  # logged since the threshold is compared
                view["threshold"] = _count(d.get("threshold"))
        elif event.event == "consent.given":
            view["consent"] = "given"
            view["set_size"] = _count(d.get("set_size"))
        elif event.event in ("consent.refused", "manifest.rejected"):
            # A rejected manifest is answered with a signed refusal too.
            view["consent"] = "refused"
            view.pop("set_size", None)
        elif event.event == "records.sent":
            view["records_sent"] = _count(d.get("set_size"))
        elif event.event == "results.written":
            view["flagged_count"] = _count(d.get("flagged_count"))
            view["delivered"] = d.get("result_sha256")
        elif event.event == "results.withdrawn":
            view.pop("flagged_count", None)
            view.pop("delivered", None)
        elif event.event == "results.deleted":
            receipt = _deletion(d)
            if receipt is None:
                view["deleted"] = True  # logged before deletions were receipted
            else:
                view["deleted"] = receipt
                view[_DELETED_SEQ] = event.seq
    for view in views.values():
        # A deletion of results the node never wrote is a disagreement with the
        # coordinator's record. One of written results is what retention asks: compared
        # with the coordinator's receipt, if the node signed one (a deletion logged
        # before receipts existed has none to compare).
        if view.get("deleted") is True and "delivered" in view:
            view.pop("deleted")
    return {rid: view for rid, view in views.items() if view}


def _deletion(details: Mapping[str, object]) -> dict[str, object] | None:
    """What a deletion receipt says, as both logs record it; None if the event has none."""
    digest, when = details.get("result_sha256"), details.get("deleted_at")
    if not isinstance(digest, str) or not isinstance(when, str):
        return None
    return {"result_sha256": digest, "deleted_at": when}


def _coordinator_views(
    events: Iterable[AuditEvent],
) -> dict[str, dict[str, dict[str, object]]]:
    """Per partner and round, what the coordinator's log says about that partner."""
    views: dict[str, dict[str, dict[str, object]]] = {}

    def view(partner: str, round_id: str) -> dict[str, object]:
        return views.setdefault(partner, {}).setdefault(round_id, {})

    created: dict[str, dict[str, object]] = {}
    for event in events:
        if not event.round_id:
            continue
        d = event.details
        partner = d.get("partner")
        if event.event == "round.created":
            created[event.round_id] = {
                "manifest_sha256": d.get("manifest_sha256"),
                "purpose_version": _count(d.get("purpose_version")),
                "partners": _names(d.get("partners")),
                "threshold": _count(d.get("threshold")),
            }
        elif event.event == "set_sizes":
            sizes = d.get("set_sizes")
            if isinstance(sizes, Mapping):
                for pid, size in sizes.items():
                    view(str(pid), event.round_id)["records_sent"] = _count(size)
        elif not isinstance(partner, str):
            continue
        elif event.event == "consent.given":
            v = view(partner, event.round_id)
            v["consent"] = "given"
            v["set_size"] = _count(d.get("set_size"))
        elif event.event == "consent.refused":
            v = view(partner, event.round_id)
            v["consent"] = "refused"
            v.pop("set_size", None)
        elif event.event == "results.delivered":
            v = view(partner, event.round_id)
            v["flagged_count"] = _count(d.get("flagged_count"))
            v["delivered"] = d.get("result_sha256")
        elif event.event == "deletion.received":
            view(partner, event.round_id)["deleted"] = _deletion(d)
    for partner_views in views.values():
        for round_id, v in partner_views.items():
            for name, value in created.get(round_id, {}).items():
                v.setdefault(name, value)
    # A round the coordinator created for a partner, with nothing else about it, still
    # holds the manifest fields: compared if that node saw the manifest.
    for round_id, fields in created.items():
        partners = fields.get("partners")
        for pid in partners if isinstance(partners, list) else []:
            v = view(str(pid), round_id)
            for name, value in fields.items():
                v.setdefault(name, value)
    return views
