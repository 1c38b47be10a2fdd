"""The node's side of a two-party round: openmined-psi's ECDH PSI, relayed by the coordinator.

DESIGN.md, "Two-party mode". The purpose names a client partner, which learns
which of its own records the server partner holds too (or only how many), and
a server partner, which learns only the client's set size. The coordinator
relays four messages and never holds a key:

1. ``BilateralRequest`` (client): the client's records, each hashed to P-256
   and raised to the client's fresh key ``a``: ``H(x)^a``. Answered with the
   client's set size.
2. ``BilateralResponse`` (server): given that request and the client's set
   size, the server raises every element to its fresh key ``b``:
   ``H(x)^ab``, in request order (sorted instead when the client may learn
   only the size).
3. ``BilateralSetup`` (server): the server's own records as ``H(y)^b``, in a
   Golomb-compressed set (``gcs``, sized for the purpose's false-positive
   rate given the client's set size) or as a plain list (``raw``, exact).
   The server stages a metadata-only result and forgets its key.
4. ``BilateralResult`` (client): the client strips ``a`` from the response
   and looks each ``H(x)^b`` up in the setup; matching indices are its own
   records. It stages its results like a network round's (or, size only,
   a metadata file with the count) and forgets its key.

Then the coordinator commits both nodes (`RoundManager.commit`), or aborts
both. Every message is checked before it reaches openmined-psi's C++ code:
counts against the set sizes, element lengths, and the setup's Golomb
parameters -- a zero hash range aborts the whole process inside the library,
so it must never get that far. The limits are `kruispunt.psi_limits`, the
same the coordinator and the purpose registry check.

Records enter openmined-psi as their canonical identifier bytes, unchanged,
on both sides (the binding takes ``bytes`` for its ``std::string`` items).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

import private_set_intersection.python as psi
import structlog
from google.protobuf.message import DecodeError

from kruispunt.errors import InvalidPoint, ProtocolError, ResourceLimit
from kruispunt.payloads import Kind, sign_payload, verify_payload
from kruispunt.psi_limits import (
    ELEMENT_BYTES,
    MAX_GCS_DIV,
    MAX_HASH_RANGE,
    check_gcs_fits,
    gcs_hash_range,
    max_elements_bytes,
    max_setup_bytes,
)
from kruispunt.purpose import Bilateral
from kruispunt.v1 import node_pb2
from psi_node.results import (
    publish_metadata_only,
    retention_deadline,
    stage_metadata_only,
    stage_results,
)
from psi_node.round_state import (
    CONSENTED,
    STAGED,
    NodeRound,
    RoundContext,
    RoundMode,
    require_phase,
)

log = structlog.get_logger("psi_node.modes.bilateral")

# Phases a bilateral round passes at a node, between CONSENTED and STAGED.
REQUESTED: Final = "bilateral-requested"  # client: request sent, waiting for the exchange
RESPONDED: Final = "bilateral-responded"  # server: request answered, setup not yet sent

_STRUCTURES: Final = {"gcs": psi.DataStructure.GCS, "raw": psi.DataStructure.RAW}


@dataclass
class ClientState:
    """The client's openmined-psi object (it holds the round key ``a``)."""

    client: Any

    def wipe(self) -> None:
        """Let go of the library's object, and with it the key (it cannot be zeroed here)."""
        self.client = None


@dataclass
class ServerState:
    """The server's openmined-psi object (key ``b``) and the client's declared set size."""

    server: Any
    client_set_size: int = 0

    def wipe(self) -> None:
        """Let go of the library's object, and with it the key (it cannot be zeroed here)."""
        self.server = None


def _start() -> None:
    """No state at consent: openmined-psi makes each side's key in its role's first call."""
    return None


MODE: Final = RoundMode("bilateral", start=_start)


# -- the four calls ---------------------------------------------------------------------


def request(rounds: RoundContext, round_id: str) -> node_pb2.BilateralPayload:
    """Client, step 1: this node's records blinded with a fresh key; payload + set size."""
    rnd = _round(rounds, round_id, role="client", phases=(CONSENTED,))
    settings = _settings(rnd)
    records = rnd.inputs.records
    with rnd.lock:
        if rnd.phase != CONSENTED:
            raise ProtocolError("the request for this round was already made")
        client = psi.client.CreateWithNewKey(not settings.size_only)
        body = client.CreateRequest(records).SerializeToString()
        rnd.state = ClientState(client)
        rnd.phase = REQUESTED
        rnd.last_activity = time.monotonic()
    rounds.audit_event("records.sent", rnd, "E", set_size=len(records), mode=MODE.name)
    log.info("bilateral request sent", round_id=round_id, set_size=len(records))
    return _signed(rounds, rnd, "request", body, len(records))


def response(rounds: RoundContext, message: node_pb2.BilateralPayload) -> node_pb2.BilateralPayload:
    """Server, step 2: raise the client's elements to this node's fresh key, order kept."""
    rnd = _round(rounds, message.round_id, role="server", phases=(CONSENTED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    count = message.set_size
    if count < 1:
        raise ProtocolError("the client's set size must be at least 1")
    # The request and its size are the client's word, not the relay's.
    _verify(
        rounds, rnd, settings.client_partner, "request", message.payload, count, message.signature
    )
    if count > purpose.max_set_size:
        raise ResourceLimit("the client's set size exceeds the purpose's maximum set size")
    if settings.data_structure == "gcs":
        check_gcs_fits(count, len(rnd.inputs.records), settings.false_positive_rate)
    if len(message.payload) > max_elements_bytes(count):
        raise ProtocolError("bilateral request is larger than its set size allows")
    req = psi.Request()
    try:
        req.ParseFromString(message.payload)
    except DecodeError:
        raise ProtocolError("bilateral request does not parse") from None
    if req.reveal_intersection == settings.size_only:
        raise ProtocolError("bilateral request asks for another disclosure than the purpose")
    _check_elements(req.encrypted_elements, count, "bilateral request")
    with rnd.lock:
        if rnd.phase != CONSENTED:
            raise ProtocolError("this round's request was already answered")
        server = psi.server.CreateWithNewKey(not settings.size_only)
        try:
            body = server.ProcessRequest(req).SerializeToString()
        except (RuntimeError, ValueError):
            raise InvalidPoint() from None
        rnd.state = ServerState(server, client_set_size=count)
        rnd.phase = RESPONDED
        rnd.last_activity = time.monotonic()
    rounds.audit_event(
        "phase.done", rnd, "E", phase="bilateral.response", client_set_size=count, mode=MODE.name
    )
    log.info("bilateral request answered", round_id=rnd.round_id, client_set_size=count)
    return _signed(rounds, rnd, "response", body, count)


def setup(rounds: RoundContext, round_id: str) -> node_pb2.BilateralPayload:
    """Server, step 3: this node's set under its key; stage a metadata-only result."""
    rnd = _round(rounds, round_id, role="server", phases=(RESPONDED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    records = rnd.inputs.records
    with rnd.lock:
        state = rnd.state
        if rnd.phase != RESPONDED or not isinstance(state, ServerState):
            raise ProtocolError("the setup for this round was already sent")
        client_size = state.client_set_size
        message = state.server.CreateSetupMessage(
            settings.false_positive_rate,
            client_size,
            records,
            _STRUCTURES[settings.data_structure],
        )
        body = message.SerializeToString()
        now = rounds.now()
        metadata = {
            **_common_metadata(rnd, "server"),
            "client_partner": settings.client_partner,
            "client_set_size": client_size,
            "set_size": len(records),
            "learned": "the client's set size only; no records of any partner",
            "written_at": now.isoformat(),
            "delete_after": retention_deadline(now, purpose.result_retention_days).isoformat(),
        }
        rnd.staged = stage_metadata_only(rounds.config.results_dir, rnd.round_id, metadata, 0)
        rnd.publish = publish_metadata_only
        rnd.wipe_state()  # the key's work is done: drop it now, not at commit
        rnd.phase = STAGED
        rnd.last_activity = time.monotonic()
    rounds.audit_event("records.sent", rnd, "E", set_size=len(records), mode=MODE.name)
    rounds.audit_event(
        "results.received", rnd, "C", flagged_count=0, client_set_size=client_size, rows=0
    )
    log.info("bilateral setup sent", round_id=round_id, set_size=len(records))
    return _signed(rounds, rnd, "setup", body, len(records))


def result(rounds: RoundContext, exchange: node_pb2.BilateralExchange) -> node_pb2.DeliveryReceipt:
    """Client, step 4: find own records in the server's setup; stage them like Deliver does."""
    rnd = _round(rounds, exchange.round_id, role="client", phases=(REQUESTED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    size = len(rnd.inputs.records)
    if len(exchange.response) > max_elements_bytes(size):
        raise ProtocolError("bilateral response is larger than this node's set allows")
    if exchange.server_set_size > purpose.max_set_size:
        raise ResourceLimit("the server's set size exceeds the purpose's maximum set size")
    # Both answers are the server's own: checked against its roster key before use.
    server = settings.server_partner
    _verify(rounds, rnd, server, "response", exchange.response, size, exchange.response_signature)
    _verify(
        rounds,
        rnd,
        server,
        "setup",
        exchange.setup,
        exchange.server_set_size,
        exchange.setup_signature,
    )
    resp = psi.Response()
    try:
        resp.ParseFromString(exchange.response)
    except DecodeError:
        raise ProtocolError("bilateral response does not parse") from None
    _check_elements(resp.encrypted_elements, size, "bilateral response")
    server_setup = _parse_setup(
        exchange.setup,
        settings.data_structure,
        client_size=size,
        max_server_size=purpose.max_set_size,
        fpr=settings.false_positive_rate,
    )
    with rnd.lock:
        state = rnd.state
        if rnd.phase != REQUESTED or not isinstance(state, ClientState):
            raise ProtocolError("this round's exchange was already processed")
        try:
            if settings.size_only:
                found: list[int] = []
                count = int(state.client.GetIntersectionSize(server_setup, resp))
            else:
                found = sorted(int(i) for i in state.client.GetIntersection(server_setup, resp))
                count = len(found)
        except (RuntimeError, ValueError):
            raise InvalidPoint() from None
        if not 0 <= count <= size or (found and (found[0] < 0 or found[-1] >= size)):
            raise ProtocolError("the intersection does not fit this node's set")
        if len(set(found)) != len(found):
            raise ProtocolError("the intersection names a record twice")
        rnd.wipe_state()
        now = rounds.now()
        metadata: dict[str, object] = {
            **_common_metadata(rnd, "client"),
            "server_partner": settings.server_partner,
            "flagged_count": count,
            "set_sizes": {rounds.config.partner_id: size},
            "written_at": now.isoformat(),
            "delete_after": retention_deadline(now, purpose.result_retention_days).isoformat(),
        }
        if settings.size_only:
            staged = stage_metadata_only(rounds.config.results_dir, rnd.round_id, metadata, count)
            rnd.publish = publish_metadata_only
        else:
            values = rnd.inputs.values
            staged = stage_results(
                rounds.config.results_dir,
                rnd.round_id,
                columns=rnd.inputs.columns,
                rows=[values[i] for i in found],
                coholders=(
                    [[settings.server_partner]] * count
                    if purpose.disclosure == "partners"
                    else None
                ),
                metadata=metadata,
            )
        rnd.staged = staged
        rnd.phase = STAGED
        rnd.last_activity = time.monotonic()
    rounds.audit_event(
        "results.received", rnd, "C", flagged_count=count, size_only=settings.size_only
    )
    log.info("bilateral results staged", round_id=rnd.round_id, flagged=count)
    return node_pb2.DeliveryReceipt(
        round_id=rnd.round_id,
        flagged_count=count,
        result_path=str(staged.final_meta if settings.size_only else staged.final_csv),
        result_sha256=staged.sha256,
        node_audit_head=rounds.audit_head(),
    )


# -- checks ------------------------------------------------------------------------------


def _signed(
    rounds: RoundContext, rnd: NodeRound, kind: Kind, payload: bytes, set_size: int
) -> node_pb2.BilateralPayload:
    """A payload with this node's signature over it and the set size it speaks for."""
    signature = sign_payload(
        rnd.signing_key,
        round_id=rnd.round_id,
        manifest_sha256=rnd.verified.sha256,
        sender=rounds.config.partner_id,
        kind=kind,
        payload=payload,
        set_size=set_size,
    )
    return node_pb2.BilateralPayload(
        round_id=rnd.round_id, payload=payload, set_size=set_size, signature=signature
    )


def _verify(
    rounds: RoundContext,
    rnd: NodeRound,
    sender: str,
    kind: Kind,
    payload: bytes,
    set_size: int,
    signature: bytes,
) -> None:
    """AttackRefused unless `sender`'s roster key (or, within a rotation's overlap, its
    previous one) signed this payload for this round."""
    if rnd.roster is None:
        raise ProtocolError("this round has no accepted roster")
    verify_payload(
        signature,
        rnd.roster.signing_keys(sender, rounds.now()),
        round_id=rnd.round_id,
        manifest_sha256=rnd.verified.sha256,
        sender=sender,
        kind=kind,
        payload=payload,
        set_size=set_size,
    )


def _round(rounds: RoundContext, round_id: str, *, role: str, phases: tuple[str, ...]) -> NodeRound:
    """The round in flight, if bilateral, with this node in `role` and the round in `phases`."""
    rnd = rounds.get_round(round_id)
    purpose = rnd.verified.purpose
    settings = purpose.bilateral
    if purpose.mode != MODE.name or settings is None:
        raise ProtocolError("this round is not a bilateral round")
    mine = settings.client_partner if role == "client" else settings.server_partner
    if rounds.config.partner_id != mine:
        raise ProtocolError(f"this node is not the bilateral {role} of this round")
    require_phase(rnd, phases)
    return rnd


def _settings(rnd: NodeRound) -> Bilateral:
    settings = rnd.verified.purpose.bilateral
    assert settings is not None  # checked by _round
    return settings


def _check_elements(elements: Any, expected: int, what: str) -> None:
    if len(elements) != expected:
        raise ProtocolError(f"{what} carries {len(elements)} elements, expected {expected}")
    if any(len(e) != ELEMENT_BYTES for e in elements):
        raise InvalidPoint()


def _parse_setup(
    body: bytes, structure: str, *, client_size: int, max_server_size: int, fpr: float
) -> Any:
    """Parse and check a server setup before openmined-psi's C++ code reads it."""
    if len(body) > max_setup_bytes(max_server_size, structure):
        raise ProtocolError("bilateral setup is larger than the purpose's set size allows")
    message = psi.ServerSetup()
    try:
        message.ParseFromString(body)
    except DecodeError:
        raise ProtocolError("bilateral setup does not parse") from None
    present = [name for name in ("raw", "gcs", "bloom_filter") if message.HasField(name)]
    if present != [structure]:
        raise ProtocolError(f"bilateral setup is not the purpose's {structure!r} structure")
    if structure == "raw":
        elements = message.raw.encrypted_elements
        if len(elements) > max_server_size:
            raise ProtocolError("bilateral setup holds more records than the purpose allows")
        if any(len(e) != ELEMENT_BYTES for e in elements):
            raise InvalidPoint()
        return message
    gcs = message.gcs
    # The fewest hash values the library would use for this rate: fewer would raise the
    # false-positive rate above what the purpose promises.
    floor = gcs_hash_range(client_size, 1, fpr)
    ceiling = gcs_hash_range(client_size, max_server_size, fpr)
    if not floor <= gcs.hash_range <= min(ceiling, MAX_HASH_RANGE):
        raise ProtocolError("bilateral setup's hash range does not match the false-positive rate")
    if not 0 <= gcs.div <= MAX_GCS_DIV:
        raise ProtocolError("bilateral setup's Golomb parameter is out of range")
    # The library's Golomb decoder reads up to div bits past the last terminator without
    # a bounds check. Zero padding never changes a well-formed set (trailing zero bytes
    # end the decode), and keeps a malformed one from reading past the buffer.
    gcs.bits += bytes(gcs.div // 8 + 2)
    return message


# -- result metadata ------------------------------------------------------------------


def _common_metadata(rnd: NodeRound, role: str) -> dict[str, object]:
    purpose = rnd.verified.purpose
    settings = purpose.bilateral
    assert settings is not None
    return {
        "round_id": rnd.round_id,
        "purpose": purpose.id,
        "purpose_version": purpose.version,
        "mode": MODE.name,
        "role": role,
        "disclosure": purpose.disclosure,
        "size_only": settings.size_only,
        "data_structure": settings.data_structure,
        "false_positive_rate": settings.false_positive_rate,
    }
