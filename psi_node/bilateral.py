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
so it must never get that far.

Records enter openmined-psi as their canonical identifier bytes, unchanged,
on both sides (the binding takes ``bytes`` for its ``std::string`` items).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import private_set_intersection.python as psi
import structlog
from google.protobuf.message import DecodeError

from kruispunt.errors import InvalidPoint, ProtocolError, ResourceLimit
from kruispunt.purpose import Bilateral
from kruispunt.v1 import node_pb2
from psi_node.results import (
    ResultWriteError,
    StagedResult,
    _paths,
    retention_deadline,
    stage_results,
)
from psi_node.rounds import BLINDED, CONSENTED, FINALIZED, STAGED, NodeRound, RoundManager

log = structlog.get_logger("psi_node.bilateral")

#: A compressed P-256 point, as openmined-psi encodes every encrypted element.
ELEMENT_BYTES: Final = 33
#: Protobuf framing of one repeated 33-byte element: a tag byte and a length byte.
ELEMENT_FRAMING: Final = 2
#: Room for the scalar fields of a request, response or setup message.
MESSAGE_OVERHEAD: Final = 64
#: The C++ GCS computes its hash range as an int64: stay clear of overflow.
MAX_HASH_RANGE: Final = 1 << 62
#: The Golomb decoder shifts by `div`: beyond 62 bits the shift is undefined behaviour.
MAX_GCS_DIV: Final = 62

# Phases a bilateral round passes at a node, after rounds.CONSENTED and before rounds.STAGED.
REQUESTED: Final = "bilateral-requested"  # client: request sent, waiting for the exchange
RESPONDED: Final = "bilateral-responded"  # server: request answered, setup not yet sent

_ALL_PHASES: Final = (CONSENTED, BLINDED, FINALIZED, REQUESTED, RESPONDED, STAGED)

_STRUCTURES: Final = {"gcs": psi.DataStructure.GCS, "raw": psi.DataStructure.RAW}


@dataclass
class _ClientState:
    """The client's openmined-psi object (it holds the round key ``a``)."""

    client: Any


@dataclass
class _ServerState:
    """The server's openmined-psi object (key ``b``) and the client's declared set size."""

    server: Any
    client_set_size: int = 0


# -- sizes ---------------------------------------------------------------------------------


def max_elements_bytes(count: int) -> int:
    """The largest serialized request or response carrying `count` elements."""
    return count * (ELEMENT_BYTES + ELEMENT_FRAMING) + MESSAGE_OVERHEAD


def gcs_hash_range(client_size: int, server_size: int, fpr: float) -> int:
    """The hash range openmined-psi 2.x gives a GCS setup (int64 cast of a double).

    The library divides the rate over the client's queries, then sizes the range
    for the larger set: ``max(c, s) / (fpr / c)``. The same float operations
    here give the same integer.
    """
    return int(max(client_size, server_size) / (fpr / client_size))


def check_gcs_fits(client_size: int, server_size: int, fpr: float) -> None:
    """Raise ResourceLimit when a GCS setup for these sizes would overflow its hash range."""
    if gcs_hash_range(client_size, server_size, fpr) >= MAX_HASH_RANGE:
        raise ResourceLimit(
            f"a 'gcs' setup for sets of {client_size} and {server_size} records at "
            f"false-positive rate {fpr:g} overflows openmined-psi's 63-bit hash range; "
            "raise the rate or use data_structure 'raw'"
        )


# -- the four calls ---------------------------------------------------------------------


def request(rounds: RoundManager, round_id: str) -> node_pb2.BilateralPayload:
    """Client, step 1: this node's records blinded with a fresh key; payload + set size."""
    rnd = _round(rounds, round_id, role="client", phases=(CONSENTED,))
    settings = _settings(rnd)
    records = rnd.inputs.records
    with rnd.lock:
        if rnd.phase != CONSENTED:
            raise ProtocolError("the request for this round was already made")
        client = psi.client.CreateWithNewKey(not settings.size_only)
        body = client.CreateRequest(records).SerializeToString()
        rnd.bilateral = _ClientState(client)
        rnd.phase = REQUESTED
    rounds._audit("records.sent", rnd, "E", set_size=len(records), mode="bilateral")
    log.info("bilateral request sent", round_id=round_id, set_size=len(records))
    return node_pb2.BilateralPayload(round_id=round_id, payload=body, set_size=len(records))


def response(rounds: RoundManager, message: node_pb2.BilateralPayload) -> node_pb2.BilateralPayload:
    """Server, step 2: raise the client's elements to this node's fresh key, order kept."""
    rnd = _round(rounds, message.round_id, role="server", phases=(CONSENTED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    count = message.set_size
    if count < 1:
        raise ProtocolError("the client's set size must be at least 1")
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
        rnd.bilateral = _ServerState(server, client_set_size=count)
        rnd.phase = RESPONDED
    rounds._audit(
        "phase.done", rnd, "E", phase="bilateral.response", client_set_size=count, mode="bilateral"
    )
    log.info("bilateral request answered", round_id=rnd.round_id, client_set_size=count)
    return node_pb2.BilateralPayload(round_id=rnd.round_id, payload=body, set_size=count)


def setup(rounds: RoundManager, round_id: str) -> node_pb2.BilateralPayload:
    """Server, step 3: this node's set under its key; stage a metadata-only result."""
    rnd = _round(rounds, round_id, role="server", phases=(RESPONDED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    records = rnd.inputs.records
    with rnd.lock:
        state = rnd.bilateral
        if rnd.phase != RESPONDED or not isinstance(state, _ServerState):
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
        rnd.staged = _stage_metadata_only(rounds.config.results_dir, rnd.round_id, metadata, 0)
        rnd.publish = _publish_metadata_only
        rnd.bilateral = None  # the key's work is done: drop it now, not at commit
        rnd.phase = STAGED
    rounds._audit("records.sent", rnd, "E", set_size=len(records), mode="bilateral")
    rounds._audit(
        "results.received", rnd, "C", flagged_count=0, client_set_size=client_size, rows=0
    )
    log.info("bilateral setup sent", round_id=round_id, set_size=len(records))
    return node_pb2.BilateralPayload(round_id=round_id, payload=body, set_size=len(records))


def result(rounds: RoundManager, exchange: node_pb2.BilateralExchange) -> node_pb2.DeliveryReceipt:
    """Client, step 4: find own records in the server's setup; stage them like Deliver does."""
    rnd = _round(rounds, exchange.round_id, role="client", phases=(REQUESTED,))
    settings = _settings(rnd)
    purpose = rnd.verified.purpose
    size = len(rnd.inputs.records)
    if len(exchange.response) > max_elements_bytes(size):
        raise ProtocolError("bilateral response is larger than this node's set allows")
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
        state = rnd.bilateral
        if rnd.phase != REQUESTED or not isinstance(state, _ClientState):
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
        rnd.bilateral = None
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
            staged = _stage_metadata_only(rounds.config.results_dir, rnd.round_id, metadata, count)
            rnd.publish = _publish_metadata_only
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
    rounds._audit("results.received", rnd, "C", flagged_count=count, size_only=settings.size_only)
    log.info("bilateral results staged", round_id=rnd.round_id, flagged=count)
    return node_pb2.DeliveryReceipt(
        round_id=rnd.round_id,
        flagged_count=count,
        result_path=str(staged.final_meta if settings.size_only else staged.final_csv),
        result_sha256=staged.sha256,
    )


# -- checks ------------------------------------------------------------------------------


def _round(rounds: RoundManager, round_id: str, *, role: str, phases: tuple[str, ...]) -> NodeRound:
    """The round in flight, if bilateral, with this node in `role` and the round in `phases`."""
    rnd = rounds._get(round_id, phases=_ALL_PHASES)
    purpose = rnd.verified.purpose
    settings = purpose.bilateral
    if purpose.mode != "bilateral" or settings is None:
        raise ProtocolError("this round is not a bilateral round")
    mine = settings.client_partner if role == "client" else settings.server_partner
    if rounds.config.partner_id != mine:
        raise ProtocolError(f"this node is not the bilateral {role} of this round")
    if rnd.phase not in phases:
        raise ProtocolError(f"round is in phase {rnd.phase!r}, expected {' or '.join(phases)}")
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
    if structure == "raw":
        limit = max_elements_bytes(max_server_size)
    else:
        # A Golomb code spends a unary quotient (about 2 bits at the library's div), a
        # stop bit and div remainder bits on each element.
        limit = max_server_size * (MAX_GCS_DIV + 4) // 8 + MESSAGE_OVERHEAD
    if len(body) > limit:
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


# -- metadata-only results -------------------------------------------------------------


def _common_metadata(rnd: NodeRound, role: str) -> dict[str, object]:
    purpose = rnd.verified.purpose
    settings = purpose.bilateral
    assert settings is not None
    return {
        "round_id": rnd.round_id,
        "purpose": purpose.id,
        "purpose_version": purpose.version,
        "mode": "bilateral",
        "role": role,
        "disclosure": purpose.disclosure,
        "size_only": settings.size_only,
        "data_structure": settings.data_structure,
        "false_positive_rate": settings.false_positive_rate,
    }


def _stage_metadata_only(
    results_dir: Path, round_id: str, metadata: dict[str, object], count: int
) -> StagedResult:
    """Stage a result that is only a metadata file (server, or a size-only client)."""
    staged_csv, staged_meta, final_csv, final_meta = _paths(results_dir, round_id)
    body = (json.dumps(metadata, indent=2) + "\n").encode("utf-8")
    try:
        results_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(staged_meta, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            staged_meta.unlink()
        raise ResultWriteError(
            f"cannot write results in {results_dir}: {exc.strerror or exc}"
        ) from None
    return StagedResult(
        round_id,
        staged_csv,
        staged_meta,
        final_csv,
        final_meta,
        hashlib.sha256(body).digest(),
        count,
    )


def _publish_metadata_only(staged: StagedResult) -> Path:
    """Publish a metadata-only result by atomic rename; returns the metadata path."""
    try:
        os.replace(staged.staged_meta, staged.final_meta)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            staged.staged_meta.unlink()
        raise ResultWriteError(
            f"cannot publish results in {staged.final_meta.parent}: {exc.strerror or exc}"
        ) from None
    return staged.final_meta


# -- benchmarks -------------------------------------------------------------------------


def openmined_baseline(
    client_items: list[bytes], server_items: list[bytes], fpr: float, data_structure: str
) -> int:
    """The intersection size by openmined-psi alone, in one process: the comparison point.

    Its fastest setup: both parties in this process, the native objects called
    directly (no protobuf round trips), size only (no index bookkeeping).
    """
    native = psi.psi  # the compiled module behind the public wrapper
    client = native.cpp_client.CreateWithNewKey(False)
    server = native.cpp_server.CreateWithNewKey(False)
    setup_message = server.CreateSetupMessage(
        fpr, len(client_items), server_items, _STRUCTURES[data_structure].value
    )
    answer = server.ProcessRequest(client.CreateRequest(client_items))
    return int(client.GetIntersectionSize(setup_message, answer))
