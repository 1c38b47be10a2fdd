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

import hashlib
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import grpc
import structlog

from coordinator.orchestrator import (
    Progress,
    RoundCancelled,
    _event,
    _Peer,
    _Refused,
    _RoundState,
    _rpc_reason,
    _summary_dict,
)
from coordinator.store import ABORTED, COMPLETED, FAILED, REFUSED
from kruispunt.errors import ConfigError, RoundFailed
from kruispunt.manifest import new_round_id, sign_manifest
from kruispunt.purpose import Bilateral, Purpose
from kruispunt.transport import MAX_MESSAGE_BYTES
from kruispunt.v1 import common_pb2, coordinator_pb2, node_pb2

if TYPE_CHECKING:
    from coordinator.orchestrator import RoundRunner

log = structlog.get_logger("coordinator.bilateral")

T = TypeVar("T")

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


def run_bilateral(
    runner: RoundRunner,
    purpose: Purpose,
    *,
    initiated_by: str,
    access_point: str,
    reason: str = "",
    progress: Progress | None = None,
) -> coordinator_pb2.RoundSummary:
    """Run one two-party round now; the summary's state says how it ended."""
    emit = progress or (lambda _e: None)
    settings = purpose.bilateral
    if purpose.mode != "bilateral" or settings is None:
        raise ConfigError(f"purpose {purpose.id!r} is not a bilateral purpose")
    partners = runner._registered(purpose, initiated_by, access_point)
    now = runner.now()
    round_id = new_round_id(now)
    order = [p.id for p in partners]
    signed = sign_manifest(
        runner._signing_key,
        round_id=round_id,
        network=runner.config.network,
        purpose=purpose,
        partners=order,
        now=now,
        ttl_seconds=runner.config.manifest_ttl_seconds,
        initiated_by=initiated_by,
    )
    state = _RoundState(
        round_id=round_id,
        purpose=purpose,
        partners=order,
        manifest_sha256=hashlib.sha256(signed.manifest).digest(),
        basis=f"{purpose.id} v{purpose.version}; covenant {purpose.covenant_id}",
    )
    runner.store.create_round(round_id, purpose, initiated_by, now.isoformat(), signed.manifest)
    runner.audit.append(
        "round.created",
        actor=initiated_by,
        on_behalf_of=runner.config.network,
        access_point=access_point,
        action="C",
        basis=state.basis,
        round_id=round_id,
        details={
            "purpose": purpose.id,
            "purpose_version": purpose.version,
            "partners": order,
            "mode": "bilateral",
            "client": settings.client_partner,
            "server": settings.server_partner,
            "size_only": settings.size_only,
            "data_structure": settings.data_structure,
            "false_positive_rate": f"{settings.false_positive_rate:g}",
            "disclosure": purpose.disclosure,
            "manifest_sha256": state.manifest_sha256.hex(),
            "reason": reason,
        },
    )
    cancel = threading.Event()
    with runner._lock:
        runner._cancel[round_id] = cancel
    peers = {p.id: runner._connect(p) for p in partners}
    bound = log.bind(round_id=round_id, purpose=purpose.id)
    bound.info(
        "bilateral round started",
        client=settings.client_partner,
        server=settings.server_partner,
        initiated_by=initiated_by,
    )
    emit(_event(round_id, "propose", f"round {round_id} for {purpose.id}: asking consent"))
    try:
        runner._propose(state, peers, signed, emit, cancel)
        check_sizes(
            settings,
            state.set_sizes[settings.client_partner],
            state.set_sizes[settings.server_partner],
        )
        _exchange(runner, state, settings, peers, emit, cancel)
    except RoundFailed as exc:
        terminal = (
            REFUSED
            if isinstance(exc, _Refused)
            else (ABORTED if isinstance(exc, RoundCancelled) else FAILED)
        )
        return runner._fail(state, peers, terminal, str(exc), emit)
    except Exception as exc:  # a bug must still end the round cleanly
        bound.exception("bilateral round crashed")
        return runner._fail(state, peers, FAILED, f"internal error: {type(exc).__name__}", emit)
    finally:
        with runner._lock:
            runner._cancel.pop(round_id, None)
        for peer in peers.values():
            peer.channel.close()
    summary = runner._summary(state, COMPLETED, "")
    runner.store.finish_round(
        round_id, COMPLETED, "", runner.now().isoformat(), _summary_dict(summary)
    )
    runner.audit.append(
        "round.completed",
        actor="coordinator",
        on_behalf_of=runner.config.network,
        access_point=access_point,
        action="E",
        basis=state.basis,
        round_id=round_id,
        details={
            "seconds": round(summary.seconds, 3),
            "flagged": dict(state.flagged),
            "set_sizes": dict(state.set_sizes),
            "mode": "bilateral",
        },
    )
    bound.info("bilateral round completed", seconds=round(summary.seconds, 3))
    emit(_event(round_id, "done", "round completed", summary=summary))
    return summary


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


def _exchange(
    runner: RoundRunner,
    state: _RoundState,
    settings: Bilateral,
    peers: dict[str, _Peer],
    emit: Progress,
    cancel: threading.Event,
) -> None:
    client_id, server_id = settings.client_partner, settings.server_partner
    client, server = peers[client_id].stub, peers[server_id].stub
    client_size, server_size = state.set_sizes[client_id], state.set_sizes[server_id]
    timeout = runner.config.phase_timeout_seconds
    ref = common_pb2.RoundRef(round_id=state.round_id)

    # 1. The client's records under its key.
    t0 = time.monotonic()
    runner.store.set_progress(state.round_id, "request", "")
    req = _call(client_id, lambda: client.BilateralRequest(ref, timeout=timeout))
    _check_payload(req, state.round_id, client_id, client_size, _elements_limit(client_size))
    state.phases["request"] = time.monotonic() - t0
    emit(_event(state.round_id, "request", f"{client_id} sent its request"))
    _check_cancel(cancel)

    # 2. The same elements under the server's key too, order kept.
    t0 = time.monotonic()
    runner.store.set_progress(state.round_id, "response", "")
    relay = node_pb2.BilateralPayload(
        round_id=state.round_id, payload=req.payload, set_size=client_size
    )
    resp = _call(server_id, lambda: server.BilateralResponse(relay, timeout=timeout))
    _check_payload(resp, state.round_id, server_id, client_size, _elements_limit(client_size))
    state.phases["response"] = time.monotonic() - t0
    emit(_event(state.round_id, "response", f"{server_id} answered the request"))
    _check_cancel(cancel)

    # 3. The server's own records under its key; it stages its metadata-only result.
    t0 = time.monotonic()
    runner.store.set_progress(state.round_id, "setup", "")
    setup = _call(server_id, lambda: server.BilateralSetup(ref, timeout=timeout))
    state.staged.add(server_id)
    per_record = GCS_WIRE_BYTES if settings.data_structure == "gcs" else ELEMENT_WIRE_BYTES
    _check_payload(
        setup, state.round_id, server_id, server_size, server_size * per_record + OVERHEAD_BYTES
    )
    state.phases["setup"] = time.monotonic() - t0
    emit(_event(state.round_id, "setup", f"{server_id} sent its setup"))
    _check_cancel(cancel)

    # 4. The client intersects and stages its results.
    t0 = time.monotonic()
    runner.store.set_progress(state.round_id, "result", "")
    exchange = node_pb2.BilateralExchange(
        round_id=state.round_id, setup=setup.payload, response=resp.payload
    )
    receipt = _call(client_id, lambda: client.BilateralResult(exchange, timeout=timeout))
    state.staged.add(client_id)
    if receipt.round_id != state.round_id or receipt.flagged_count > client_size:
        raise RoundFailed(f"{client_id}: staged results that do not fit its set")
    state.flagged = {client_id: receipt.flagged_count, server_id: 0}
    state.phases["result"] = time.monotonic() - t0
    emit(_event(state.round_id, "result", f"{client_id} staged its results"))
    _check_cancel(cancel)

    # Both sides staged: publish at both.
    t0 = time.monotonic()
    runner.store.set_progress(state.round_id, "deliver", "")
    committed = runner._parallel(
        state, peers, "commit", lambda pid, peer: peer.stub.Commit(ref, timeout=timeout)
    )
    for pid in state.partners:
        done = committed[pid]
        if done.flagged_count != state.flagged[pid]:
            raise RoundFailed(
                f"{pid}: committed {done.flagged_count} results, expected {state.flagged[pid]}"
            )
        state.result_paths[pid] = done.result_path
        runner._audit_round(
            state,
            "results.delivered",
            pid,
            flagged_count=done.flagged_count,
            role="client" if pid == client_id else "server",
            result_sha256=done.result_sha256.hex(),
        )
    state.staged.clear()
    state.phases["deliver"] = time.monotonic() - t0
    emit(_event(state.round_id, "deliver", "results written at both partners"))


def _call(pid: str, call: Callable[[], T]) -> T:
    """One relayed RPC; a gRPC error fails the round with the partner's name."""
    try:
        return call()
    except grpc.RpcError as exc:
        raise RoundFailed(f"{pid}: {_rpc_reason(exc)}") from None


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


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise RoundCancelled("cancelled by the operator")
