"""Running one two-party round (DESIGN.md, "Two-party mode"): openmined-psi, relayed.

Same path as a network round up to consent -- a signed manifest, each node's
signed consent or refusal, the audit trail -- then four relayed calls instead
of the blind/evaluate/finalize schedule:

1. client ``BilateralRequest``: its records under its fresh key, and its set size;
2. server ``BilateralResponse``: that request under the server's key too (the
   server learns the client's set size here, and nothing else);
3. server ``BilateralSetup``: the server's records under its key, as a GCS or a
   raw list; the server stages its metadata-only result;
4. client ``BilateralResult``: setup and response; the client stages its results.

Then Commit on both, as after Deliver in a network round. Every payload the
coordinator relays is under at least one key it does not hold; it checks
sizes against the consented set sizes and keeps nothing but aggregates.
"""

from __future__ import annotations

import time

import structlog

from coordinator.round_context import RoundContext, RoundState
from kruispunt.errors import ConfigError, RoundFailed
from kruispunt.purpose import Bilateral, Purpose
from kruispunt.transport import MAX_MESSAGE_BYTES
from kruispunt.v1 import common_pb2, node_pb2

log = structlog.get_logger("coordinator.bilateral")

__all__ = ["check_sizes", "created_details", "run"]

#: Bytes of one encrypted element on the wire: a compressed P-256 point and its framing.
ELEMENT_WIRE_BYTES = 35
#: Bytes a GCS setup may spend per server record (a Golomb code of at most 62+3 bits).
GCS_WIRE_BYTES = 9
#: Room for the scalar fields of one openmined-psi message.
OVERHEAD_BYTES = 64
#: The C++ GCS keeps its hash range in an int64; stay clear of overflow.
MAX_HASH_RANGE = 1 << 62
#: Room left in a gRPC message for the envelope around the payloads.
ENVELOPE_BYTES = 4096


def created_details(purpose: Purpose) -> dict[str, object]:
    """What the `round.created` audit event records about a two-party round."""
    settings = _settings(purpose)
    return {
        "client": settings.client_partner,
        "server": settings.server_partner,
        "size_only": settings.size_only,
        "data_structure": settings.data_structure,
        "false_positive_rate": f"{settings.false_positive_rate:g}",
        "disclosure": purpose.disclosure,
    }


def run(context: RoundContext, state: RoundState) -> None:
    """Take a consented two-party round through size checks and the four relayed calls."""
    settings = _settings(state.purpose)
    check_sizes(
        settings,
        state.set_sizes[settings.client_partner],
        state.set_sizes[settings.server_partner],
    )
    _exchange(context, state, settings)


def _settings(purpose: Purpose) -> Bilateral:
    if purpose.mode != "bilateral" or purpose.bilateral is None:
        raise ConfigError(f"purpose {purpose.id!r} is not a bilateral purpose")
    return purpose.bilateral


def check_sizes(settings: Bilateral, client_size: int, server_size: int) -> None:
    """Raise RoundFailed when these set sizes cannot run as one bilateral exchange.

    Two limits, both known once the consents are in and before any record
    moves: the exchange (setup and response in one message) must fit a gRPC
    message, and a GCS setup's hash range, ``max(c, s) * c / fpr``, must fit
    the library's int64.
    """
    fpr = settings.false_positive_rate
    if settings.data_structure == "gcs":
        if max(client_size, server_size) / (fpr / client_size) >= MAX_HASH_RANGE:
            raise RoundFailed(
                f"a 'gcs' setup for sets of {client_size} and {server_size} records at "
                f"false-positive rate {fpr:g} overflows openmined-psi's hash range; "
                "raise the rate or use data_structure 'raw'"
            )
        setup_bytes = server_size * GCS_WIRE_BYTES
    else:
        setup_bytes = server_size * ELEMENT_WIRE_BYTES
    exchange = setup_bytes + client_size * ELEMENT_WIRE_BYTES + 2 * OVERHEAD_BYTES
    if exchange > MAX_MESSAGE_BYTES - ENVELOPE_BYTES:
        raise RoundFailed(
            f"sets of {client_size} and {server_size} records need about {exchange} bytes in "
            f"one message, more than the {MAX_MESSAGE_BYTES} allowed; use a network round"
        )


def _exchange(context: RoundContext, state: RoundState, settings: Bilateral) -> None:
    client_id, server_id = settings.client_partner, settings.server_partner
    client_size, server_size = state.set_sizes[client_id], state.set_sizes[server_id]
    timeout = context.timeout
    ref = common_pb2.RoundRef(round_id=state.round_id)

    # 1. The client's records under its key.
    t0 = time.monotonic()
    context.enter(state, "request")
    req = context.call(client_id, lambda peer: peer.stub.BilateralRequest(ref, timeout=timeout))
    _check_payload(req, state.round_id, client_id, client_size, _elements_limit(client_size))
    state.phases["request"] = time.monotonic() - t0
    context.report(state, "request", f"{client_id} sent its request")
    context.check_cancel()

    # 2. The same elements under the server's key too, order kept.
    t0 = time.monotonic()
    context.enter(state, "response")
    relay = node_pb2.BilateralPayload(
        round_id=state.round_id, payload=req.payload, set_size=client_size
    )
    resp = context.call(server_id, lambda peer: peer.stub.BilateralResponse(relay, timeout=timeout))
    _check_payload(resp, state.round_id, server_id, client_size, _elements_limit(client_size))
    state.phases["response"] = time.monotonic() - t0
    context.report(state, "response", f"{server_id} answered the request")
    context.check_cancel()

    # 3. The server's own records under its key; it stages its metadata-only result.
    t0 = time.monotonic()
    context.enter(state, "setup")
    setup = context.call(server_id, lambda peer: peer.stub.BilateralSetup(ref, timeout=timeout))
    state.staged.add(server_id)
    per_record = GCS_WIRE_BYTES if settings.data_structure == "gcs" else ELEMENT_WIRE_BYTES
    _check_payload(
        setup, state.round_id, server_id, server_size, server_size * per_record + OVERHEAD_BYTES
    )
    state.phases["setup"] = time.monotonic() - t0
    context.report(state, "setup", f"{server_id} sent its setup")
    context.check_cancel()

    # 4. The client intersects and stages its results.
    t0 = time.monotonic()
    context.enter(state, "result")
    exchange = node_pb2.BilateralExchange(
        round_id=state.round_id, setup=setup.payload, response=resp.payload
    )
    receipt = context.call(
        client_id, lambda peer: peer.stub.BilateralResult(exchange, timeout=timeout)
    )
    state.staged.add(client_id)
    if receipt.round_id != state.round_id or receipt.flagged_count > client_size:
        raise RoundFailed(f"{client_id}: staged results that do not fit its set")
    state.flagged = {client_id: receipt.flagged_count, server_id: 0}
    state.phases["result"] = time.monotonic() - t0
    context.report(state, "result", f"{client_id} staged its results")
    context.check_cancel()

    # Both sides staged: publish at both.
    t0 = time.monotonic()
    context.enter(state, "deliver")
    committed = context.parallel(
        state, "commit", lambda pid, peer: peer.stub.Commit(ref, timeout=timeout)
    )
    for pid in state.partners:
        done = committed[pid]
        if done.flagged_count != state.flagged[pid]:
            raise RoundFailed(
                f"{pid}: committed {done.flagged_count} results, expected {state.flagged[pid]}"
            )
        state.result_paths[pid] = done.result_path
        context.record(
            state,
            "results.delivered",
            pid,
            flagged_count=done.flagged_count,
            role="client" if pid == client_id else "server",
            result_sha256=done.result_sha256.hex(),
        )
    state.staged.clear()
    state.phases["deliver"] = time.monotonic() - t0
    context.report(state, "deliver", "results written at both partners")


def _elements_limit(count: int) -> int:
    return count * ELEMENT_WIRE_BYTES + OVERHEAD_BYTES


def _check_payload(
    message: node_pb2.BilateralPayload, round_id: str, pid: str, set_size: int, limit: int
) -> None:
    if message.round_id != round_id:
        raise RoundFailed(f"{pid}: answered for another round")
    if message.set_size != set_size:
        raise RoundFailed(f"{pid}: payload is for {message.set_size} records, expected {set_size}")
    if not message.payload or len(message.payload) > limit:
        raise RoundFailed(f"{pid}: payload of {len(message.payload)} bytes does not fit its set")
