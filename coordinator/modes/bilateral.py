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
from kruispunt import psi_limits
from kruispunt.errors import ConfigError, ResourceLimit, RoundFailed
from kruispunt.purpose import Bilateral, Purpose
from kruispunt.transport import MAX_MESSAGE_BYTES
from kruispunt.v1 import common_pb2, node_pb2

log = structlog.get_logger("coordinator.bilateral")

__all__ = ["ENVELOPE_BYTES", "check_sizes", "created_details", "run", "setup_limit"]

#: Room left in a gRPC message for the coordinator's envelope around the relayed payloads.
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
    the library's int64. Both are `kruispunt.psi_limits`, the numbers the
    nodes check, so the coordinator never starts a round a node would refuse.
    """
    if settings.data_structure == "gcs":
        try:
            psi_limits.check_gcs_fits(client_size, server_size, settings.false_positive_rate)
        except ResourceLimit as err:
            # The round fails, with the shared limit's reason (sizes and rate only).
            raise RoundFailed(str(err)) from err
    exchange = psi_limits.exchange_bytes(client_size, server_size, settings.data_structure)
    if exchange > MAX_MESSAGE_BYTES - ENVELOPE_BYTES:
        raise RoundFailed(
            f"sets of {client_size} and {server_size} records need about {exchange} bytes in "
            f"one message, more than the {MAX_MESSAGE_BYTES} allowed; use a network round"
        )


def setup_limit(settings: Bilateral, server_size: int) -> int:
    """The largest server setup the coordinator relays: the bound the client node checks."""
    return psi_limits.max_setup_bytes(server_size, settings.data_structure)


def _exchange(context: RoundContext, state: RoundState, settings: Bilateral) -> None:
    client_id, server_id = settings.client_partner, settings.server_partner
    client_size, server_size = state.set_sizes[client_id], state.set_sizes[server_id]
    timeout = context.timeout
    ref = common_pb2.RoundRef(round_id=state.round_id)

    # 1. The client's records under its key.
    t0 = time.monotonic()
    context.enter(state, "request")
    req = context.call(client_id, lambda peer: peer.stub.BilateralRequest(ref, timeout=timeout))
    _check_payload(
        req, state.round_id, client_id, client_size, psi_limits.max_elements_bytes(client_size)
    )
    state.phases["request"] = time.monotonic() - t0
    context.report(state, "request", f"{client_id} sent its request")
    context.check_cancel()

    # 2. The same elements under the server's key too, order kept.
    t0 = time.monotonic()
    context.enter(state, "response")
    relay = node_pb2.BilateralPayload(
        round_id=state.round_id, payload=req.payload, set_size=client_size, signature=req.signature
    )
    resp = context.call(server_id, lambda peer: peer.stub.BilateralResponse(relay, timeout=timeout))
    _check_payload(
        resp, state.round_id, server_id, client_size, psi_limits.max_elements_bytes(client_size)
    )
    state.phases["response"] = time.monotonic() - t0
    context.report(state, "response", f"{server_id} answered the request")
    context.check_cancel()

    # 3. The server's own records under its key; it stages its metadata-only result.
    t0 = time.monotonic()
    context.enter(state, "setup")
    setup = context.call(server_id, lambda peer: peer.stub.BilateralSetup(ref, timeout=timeout))
    state.staged.add(server_id)
    _check_payload(
        setup, state.round_id, server_id, server_size, setup_limit(settings, server_size)
    )
    state.phases["setup"] = time.monotonic() - t0
    context.report(state, "setup", f"{server_id} sent its setup")
    context.check_cancel()

    # 4. The client intersects and stages its results.
    t0 = time.monotonic()
    context.enter(state, "result")
    exchange = node_pb2.BilateralExchange(
        round_id=state.round_id,
        setup=setup.payload,
        response=resp.payload,
        response_signature=resp.signature,
        setup_signature=setup.signature,
        server_set_size=setup.set_size,
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
    context.commit(state, **{client_id: "client", server_id: "server"})
    state.phases["deliver"] = time.monotonic() - t0
    context.report(state, "deliver", "results written at both partners")


def _check_payload(
    message: node_pb2.BilateralPayload, round_id: str, pid: str, set_size: int, limit: int
) -> None:
    if message.round_id != round_id:
        raise RoundFailed(f"{pid}: answered for another round")
    if message.set_size != set_size:
        raise RoundFailed(f"{pid}: payload is for {message.set_size} records, expected {set_size}")
    if not message.payload or len(message.payload) > limit:
        raise RoundFailed(f"{pid}: payload of {len(message.payload)} bytes does not fit its set")
