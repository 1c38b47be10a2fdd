"""Red-team helpers on top of Mallory: the extra moves a coordinator (and one colluding node) makes.

Everything here uses only what `tests.support.mallory.Mallory` holds -- the coordinator's
keys, the exported roster (public keys only) and, for collusion, one node's signing key --
plus the public structure of the protocol. Nothing reaches into a node's memory.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt.commitments import Commitment, sign_root
from kruispunt.manifest import new_round_id, sign_consent, sign_manifest
from kruispunt.tagkey import TagKeyContribution
from kruispunt.v1 import common_pb2, node_pb2
from kruispunt.wire import TAG_BYTES
from tests.support.mallory import PURPOSE, Mallory, OpenRound, parse_consent


def split_tags(packed: bytes) -> list[bytes]:
    """A packed tag list as one 16-byte tag per record, in the node's sending order."""
    return [packed[i : i + TAG_BYTES] for i in range(0, len(packed), TAG_BYTES)]


def consented_sizes(rnd: OpenRound) -> dict[str, int]:
    """Every partner's set size as it signed it in its consent."""
    return {pid: parse_consent(signed).set_size for pid, signed in rnd.consents.items()}


def run_to_tags(rnd: OpenRound) -> dict[str, tuple[bytes, bytes, bytes]]:
    """Blind, route and finalize every partner honestly: (tags, salts, root) per partner."""
    blinded = rnd.blind_all()
    routed = {origin: rnd.route(origin, *blinded[origin]) for origin in rnd.partners}
    return rnd.finalize_all(routed)


def mask(rnd: OpenRound, *holders: str) -> int:
    """The holder mask naming `holders` (bit = position in the manifest's partner order)."""
    out = 0
    for pid in holders:
        out |= 1 << rnd.partners.index(pid)
    return out


def results(
    rnd: OpenRound,
    *,
    flagged: list[int],
    masks: list[int],
    proofs: list[node_pb2.CoholderProof],
) -> node_pb2.RoundResults:
    """RoundResults with the consented set sizes and the evidence she chooses."""
    msg = node_pb2.RoundResults(
        round_id=rnd.round_id,
        set_sizes=consented_sizes(rnd),
        flagged_indices=flagged,
        flagged_count=len(flagged),
        holder_masks=masks,
    )
    msg.proofs.extend(proofs)
    return msg


def honest_results(
    rnd: OpenRound, tags: dict[str, tuple[bytes, bytes, bytes]], pid: str, threshold: int = 2
) -> tuple[list[int], list[int], list[node_pb2.CoholderProof]]:
    """What an honest coordinator delivers to `pid` under `partners` disclosure: its
    records held by at least `threshold` partners, their masks, and a genuine inclusion
    proof per co-holder (ordered by flagged record, as the coordinator orders them)."""
    trees = {p: Commitment.with_salts(got[0], got[1]) for p, got in tags.items()}
    position = {p: {t: i for i, t in enumerate(split_tags(got[0]))} for p, got in tags.items()}
    flagged: list[int] = []
    masks: list[int] = []
    proofs: list[node_pb2.CoholderProof] = []
    for index, tag in enumerate(split_tags(tags[pid][0])):
        holders = [p for p in rnd.partners if tag in position[p]]
        if len(holders) < threshold:
            continue
        for holder in holders:
            if holder != pid:
                proof = trees[holder].proof(position[holder][tag]).encode()
                proofs.append(
                    node_pb2.CoholderProof(flagged=len(flagged), partner=holder, proof=proof)
                )
        flagged.append(index)
        masks.append(mask(rnd, *holders))
    return flagged, masks, proofs


def colluder_commitment(
    rnd: OpenRound, colluder: str, key: Ed25519PrivateKey, tags: list[bytes]
) -> tuple[Commitment, bytes]:
    """A commitment the colluding node signs over a tag list of her choosing: (tree, root)."""
    tree = Commitment.build(b"".join(tags))
    signed = sign_root(
        key,
        round_id=rnd.round_id,
        manifest_sha256=rnd.manifest_sha256,
        partner=colluder,
        count=tree.count,
        root=tree.root,
    )
    return tree, signed.encode()


def consent_with_split_share(
    rnd: OpenRound, colluder: str, key: Ed25519PrivateKey, victim: str
) -> common_pb2.SignedConsent:
    """The colluder's own consent, re-signed with a share of ANOTHER secret sealed to `victim`.

    Every other partner still opens the colluder's original secret; `victim` opens a
    different one. Each share is well formed and signed by its sender, so each recipient
    alone sees nothing wrong.
    """
    consent = parse_consent(rnd.consents[colluder])
    other = TagKeyContribution.new(
        rnd.round_id,
        rnd.manifest_sha256,
        colluder,
        {victim: rnd.mallory.roster.partner(victim).agreement_key},
    )
    consent.tag_key_shares[victim] = other.sealed[victim]
    return sign_consent(key, consent)


def manifest_with_ttl(
    mallory: Mallory, ttl_seconds: int, **fields: Any
) -> common_pb2.SignedManifest:
    """A manifest like `Mallory.manifest`, valid for `ttl_seconds` of her choosing."""
    purpose = mallory.net.coordinator.store.purpose(PURPOSE)
    now = datetime.now(UTC)
    return sign_manifest(
        mallory.manifest_key,
        round_id=new_round_id(now),
        network=mallory.net.config.network,
        purpose=purpose,
        partners=list(purpose.partners),
        now=now,
        ttl_seconds=ttl_seconds,
        initiated_by="operator:mallory",
        roster_sha256=mallory.roster.digest,
        **fields,
    )


def result_csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    """The bytes a node's result file holds for `rows`, as a coordinator can rebuild them.

    The format is public (`;`-separated, a header line, the export's own cell text, a last
    `partners` column under `partners` disclosure); nothing secret goes into it.
    """
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def invert_result_digest(
    digest: bytes, header: Sequence[str], coholders: str | None, cells: Iterable[str]
) -> str | None:
    """The identifier cell behind a one-row result file's SHA-256, by trying every candidate.

    `cells` stands in for the attacker's enumeration of the identifier space: about 9.1e7
    valid BSNs times the few ways exports spell them, or the ~1e7 addresses of the public
    BAG. SHA-256 runs at millions of candidates a second per core, so the real enumeration
    takes minutes; nothing about it needs a key.
    """
    for cell in cells:
        row = [cell] if coholders is None else [cell, coholders]
        if hashlib.sha256(result_csv(header, [row])).digest() == digest:
            return cell
    return None
