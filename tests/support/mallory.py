"""Mallory, an actively malicious coordinator, for attack tests against real node servers.

She holds exactly what a coordinator holds: its TLS key and certificate (the only client a
node answers), its manifest signing key and the roster file it exported. She signs any
manifest she likes and drives every node method directly over real mTLS. For attacks in
which she colludes with one node, `colluding_key` hands her that node's signing key, as a
corrupt partner would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from coordinator.provision import roster_path
from kruispunt import hops, pki, signing, transport, wire
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.purpose import Purpose
from kruispunt.roster import load_roster
from kruispunt.v1 import common_pb2, node_pb2, node_pb2_grpc

PURPOSE = "vroegsignalering"


class Mallory:
    """A coordinator that follows no protocol but its own."""

    def __init__(self, net: Any) -> None:
        self.net = net
        config = net.config
        self.manifest_key = signing.load_signing_key(config.signing_key)
        self.roster = load_roster(roster_path(config))
        self._tls = (
            pki.private_key_pem(pki.load_tls_key(config.tls_key)),
            config.tls_cert.read_bytes(),
            config.tls_ca.read_bytes(),
        )
        self._stubs: dict[str, node_pb2_grpc.PsiNodeStub] = {}
        self._channels: list[grpc.Channel] = []

    # -- talking to nodes ----------------------------------------------------------------

    def stub(self, pid: str) -> node_pb2_grpc.PsiNodeStub:
        if pid not in self._stubs:
            key, cert, ca = self._tls
            channel = transport.secure_channel(
                f"127.0.0.1:{self.net.nodes[pid].port}",
                pki.Identity.partner(self.net.config.network, pid),
                key_pem=key,
                cert_pem=cert,
                ca_pem=ca,
            )
            self._channels.append(channel)
            self._stubs[pid] = node_pb2_grpc.PsiNodeStub(channel)
        return self._stubs[pid]

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    # -- manifests and consent -------------------------------------------------------------

    def manifest(
        self,
        *,
        partners: Sequence[str] | None = None,
        roster_sha256: bytes | None = None,
        **fields: Any,
    ) -> common_pb2.SignedManifest:
        """A manifest of her own making, signed with the coordinator's key."""
        purpose = self.net.coordinator.store.purpose(PURPOSE)
        if partners is not None:  # a purpose for just those partners
            bases = {p: b for p, b in purpose.legal_basis.items() if p in partners}
            fields = {"legal_basis": bases, **fields}
        if fields:
            purpose = Purpose.from_dict({**purpose.to_dict(), **fields})
        now = datetime.now(UTC)
        return sign_manifest(
            self.manifest_key,
            round_id=new_round_id(now),
            network=self.net.config.network,
            purpose=purpose,
            partners=list(partners or purpose.partners),
            now=now,
            ttl_seconds=600,
            initiated_by="operator:mallory",
            roster_sha256=self.roster.digest if roster_sha256 is None else roster_sha256,
        )

    def propose(self, pid: str, signed: common_pb2.SignedManifest) -> common_pb2.Consent:
        return parse_consent(self.stub(pid).Propose(signed, timeout=10))

    def open_round(self, **fields: Any) -> OpenRound:
        """A fresh round every partner consented to, nothing blinded yet."""
        signed = self.manifest(**fields)
        manifest = common_pb2.RoundManifest()
        manifest.ParseFromString(signed.manifest)
        consents = {}
        for pid in manifest.partners:
            answer = self.stub(pid).Propose(signed, timeout=10)
            assert parse_consent(answer).granted, parse_consent(answer).reason
            consents[pid] = answer
        return OpenRound(self, signed, manifest, consents)

    def colluding_key(self, pid: str) -> Ed25519PrivateKey:
        """The signing key of a node that works with her."""
        return signing.load_signing_key(self.net.node_config(pid).signing_key)


class OpenRound:
    """One round Mallory runs by hand: every call is hers to twist."""

    def __init__(
        self,
        mallory: Mallory,
        signed: common_pb2.SignedManifest,
        manifest: common_pb2.RoundManifest,
        consents: dict[str, common_pb2.SignedConsent],
    ) -> None:
        self.mallory = mallory
        self.signed = signed
        self.manifest = manifest
        self.consents = consents
        self.round_id = manifest.round_id
        self.partners = list(manifest.partners)
        self.chunk = manifest.chunk_points
        #: (origin, step) -> (what that step's evaluator was given, its proof per chunk):
        #: relayed with the step's output, as the honest coordinator does.
        self.relay: dict[tuple[str, int], tuple[bytes, list[bytes]]] = {}

    @property
    def manifest_sha256(self) -> bytes:
        """What the nodes bind everything to: the digest of the exact signed bytes."""
        return hashlib.sha256(self.signed.manifest).digest()

    def blind(
        self, pid: str, consents: Sequence[common_pb2.SignedConsent] | None = None
    ) -> tuple[bytes, bytes]:
        """(points, chain) of a node's Blind, given the consents she chooses to forward."""
        forwarded = [self.consents[p] for p in self.partners] if consents is None else consents
        stream = self.mallory.stub(pid).Blind(
            node_pb2.BlindRequest(round_id=self.round_id, consents=forwarded), timeout=20
        )
        return collect(stream)

    def blind_all(self) -> dict[str, tuple[bytes, bytes]]:
        return {pid: self.blind(pid) for pid in self.partners}

    def evaluate(
        self, pid: str, origin: str, step: int, points: bytes, chain: bytes
    ) -> tuple[bytes, bytes]:
        source, proofs = self.relay.get((origin, step - 1), (b"", []))
        stream = self.mallory.stub(pid).Evaluate(
            batches(self.round_id, origin, step, points, chain, self.chunk, proofs, source),
            timeout=20,
        )
        made: list[bytes] = []
        out = collect(stream, made)
        self.relay[(origin, step)] = (points, made)
        return out

    def evaluator(self, origin: str, step: int) -> str:
        """The node the ring order puts at `step` of `origin`'s route."""
        n = len(self.partners)
        return self.partners[(self.partners.index(origin) - step) % n]

    def route(self, origin: str, points: bytes, chain: bytes) -> tuple[bytes, bytes]:
        """Take a set through every other node honestly: (points, chain) for finalize."""
        for step in range(1, len(self.partners)):
            points, chain = self.evaluate(self.evaluator(origin, step), origin, step, points, chain)
        return points, chain

    def finalize(self, pid: str, points: bytes, chain: bytes) -> bytes:
        """The signed tag commitment a node's Finalize answers (no tag leaves with it)."""
        source, proofs = self.relay.get((pid, len(self.partners) - 1), (b"", []))
        stream = self.mallory.stub(pid).Finalize(
            batches(self.round_id, pid, 0, points, chain, self.chunk, proofs, source), timeout=20
        )
        root = b""
        for batch in stream:
            root = batch.commitment or root
        return root

    def reveal(self, pid: str, roots: dict[str, bytes]) -> tuple[bytes, bytes]:
        """(tags, salts) a node reveals once given the commitments she forwards."""
        stream = self.mallory.stub(pid).Reveal(
            node_pb2.RevealRequest(round_id=self.round_id, roots=roots), timeout=20
        )
        tags, salts = bytearray(), bytearray()
        for batch in stream:
            tags += batch.tags
            salts += batch.salts
        return bytes(tags), bytes(salts)

    def finalize_all(
        self, routed: dict[str, tuple[bytes, bytes]]
    ) -> dict[str, tuple[bytes, bytes, bytes]]:
        """Finalize every partner, then reveal with the honest commitments:
        (tags, salts, signed root) per partner."""
        roots = {pid: self.finalize(pid, *routed[pid]) for pid in self.partners}
        return {pid: (*self.reveal(pid, roots), roots[pid]) for pid in self.partners}

    def origin_chain(self, origin: str, points: bytes, key: Ed25519PrivateKey) -> bytes:
        """A chain whose origin statement `key` signs for `points` (a colluding origin)."""
        statement = hops.OriginStatement.for_points(
            round_id=self.round_id,
            manifest_sha256=self.manifest_sha256,
            origin=origin,
            packed=points,
            chunk_size=self.chunk,
        )
        return hops.Chain(hops.sign_origin(key, statement)).encode()


def parse_consent(answer: common_pb2.SignedConsent) -> common_pb2.Consent:
    consent = common_pb2.Consent()
    consent.ParseFromString(answer.consent)
    return consent


def batches(
    round_id: str,
    origin: str,
    step: int,
    points: bytes,
    chain: bytes,
    chunk: int,
    proofs: Sequence[bytes] = (),
    source: bytes = b"",
) -> Iterator[common_pb2.PointBatch]:
    """A set as a request stream in the manifest's chunks, the chain on the first batch;
    with the last evaluator's proof and the chunk it was given on each batch, if any."""
    if not points:
        yield common_pb2.PointBatch(round_id=round_id, origin=origin, step=step, chain=chain)
        return
    stride = chunk * wire.POINT_BYTES
    for index, (offset, part) in enumerate(wire.chunks(points, wire.POINT_BYTES, chunk)):
        yield common_pb2.PointBatch(
            round_id=round_id,
            origin=origin,
            step=step,
            offset=offset,
            points=part,
            chain=chain if offset == 0 else b"",
            proof=proofs[index] if index < len(proofs) else b"",
            source=source[index * stride : (index + 1) * stride],
        )


def collect(
    stream: Iterator[common_pb2.PointBatch], proofs: list[bytes] | None = None
) -> tuple[bytes, bytes]:
    """(points, chain) from a response stream; each batch's proof appended to `proofs`."""
    points, chain = bytearray(), b""
    for batch in stream:
        points += batch.points
        chain = batch.chain or chain
        if proofs is not None and batch.points:
            proofs.append(batch.proof)
    return bytes(points), chain


def audited(net: Any, pid: str, event: str) -> list[dict[str, Any]]:
    """The details of every `event` in one node's own audit log."""
    return [e.details for e in net.nodes[pid].rounds.audit.events() if e.event == event]


def refused(net: Any, pid: str, call: Callable[[], object]) -> grpc.RpcError:
    """Run `call`; it must fail with PERMISSION_DENIED and an attack.refused event at `pid`."""
    before = len(audited(net, pid, "attack.refused"))
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
    assert len(audited(net, pid, "attack.refused")) == before + 1
    return err.value
