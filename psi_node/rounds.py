"""Rounds in flight at a node, whatever their mode: consent, registry, audit, commit, abort.

One `RoundManager` per node process. It holds, per round in flight, the
node's fresh secrets (memory only) and its canonical records, and wipes both
when the round is committed, aborted or left idle too long. What happens
between consent and commit depends on the purpose's mode and lives in one
module per mode (`psi_node.modes.network`, `psi_node.modes.bilateral`),
chosen from `psi_node.modes.MODES` at consent; the modes share
`psi_node.round_state`, never each other. The manager offers every mode's
calls as its own methods, so the gRPC servicer (`server.py`) talks to one
object and only translates messages to these calls.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from google.protobuf.message import DecodeError

from kruispunt import wire
from kruispunt.audit import head_from_proto, head_to_proto, safe_reason
from kruispunt.errors import (
    AttackRefused,
    ConfigError,
    InputFileError,
    KruispuntError,
    ManifestRejected,
    ProtocolError,
    UnknownRound,
)
from kruispunt.manifest import VerifiedManifest, is_round_id, sign_consent, verify_manifest
from kruispunt.metrics import RoundMetrics
from kruispunt.roster import Roster, load_accepted_roster
from kruispunt.signing import Verifier
from kruispunt.v1 import common_pb2, node_pb2
from psi_node import oprf
from psi_node.audit import NodeAudit
from psi_node.config import NodeConfig, load_node_config
from psi_node.deletions import ReceiptBook, purge_expired_results, sign_missing_receipts
from psi_node.inputs import read_input
from psi_node.modes import MODES, bilateral, network
from psi_node.oprf import RoundKey
from psi_node.policy import (
    SET_CHANGE_CHECK,
    ConsentHistory,
    SetSizeHistory,
    refusal_reason,
    set_change,
)
from psi_node.results import discard_staged, published_results, stale_staged
from psi_node.round_state import STAGED, NodeRound, require_phase
from psi_node.signing_keys import NodeKeys, load_node_keys

log = structlog.get_logger("psi_node.rounds")

#: A Propose refused because the coordinator aborted the round before it was done here.
ABORTED_BEFORE = "the coordinator aborted this round before this node was ready"


class RoundManager:
    """Everything a node does in rounds, independent of gRPC and of the round's mode."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        network: str,
        signing_key: Ed25519PrivateKey,
        agreement_key: X25519PrivateKey,
        coordinator_key: Ed25519PublicKey,
        audit: NodeAudit,
        now: Callable[[], datetime],
        idle_timeout: float = 1800.0,
        chunk_points: int = 4096,
        metrics: RoundMetrics | None = None,
        on_reload: Callable[[NodeConfig], None] | None = None,
    ) -> None:
        self.config = config
        self._on_reload = on_reload
        self.network = network
        # The current key, and after a rotation the previous one (`round_signing_key`).
        self._keys = NodeKeys(signing_key)
        self.agreement_key = agreement_key
        self._coordinator_key = coordinator_key
        self.audit = audit
        self.now = now
        self.idle_timeout = idle_timeout
        self.chunk_points = chunk_points
        #: Phase times and points processed (served when `[metrics]` is configured).
        self.metrics = metrics or RoundMetrics("node")
        self._rounds: dict[str, NodeRound] = {}
        # Rounds aborted before their Propose was done here (an operator's cancel overtakes
        # a node still reading its input): that Propose must not start them afterwards.
        self._aborted: set[str] = set()
        self._lock = threading.Lock()
        self._seen_path = config.state_dir / "seen-rounds"
        config.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._seen = self._load_seen()
        self.history = ConsentHistory(config.state_dir)
        self.set_sizes = SetSizeHistory(config.state_dir)
        self.receipts = ReceiptBook(config.state_dir)

    # -- bookkeeping -------------------------------------------------------------------

    def _load_seen(self) -> set[str]:
        try:
            return set(self._seen_path.read_text(encoding="utf-8").split())
        except FileNotFoundError:
            return set()

    def _remember(self, round_id: str) -> None:
        """Record a round id as seen, durably, before answering (replay protection)."""
        self._seen.add(round_id)
        with open(self._seen_path, "a", encoding="utf-8") as fh:
            fh.write(round_id + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def get_round(
        self,
        round_id: str,
        *,
        mode: str | None = None,
        phases: Iterable[str] | None = None,
        then: str | None = None,
    ) -> NodeRound:
        """The round in flight, checked to be of `mode` and in one of `phases` (if given),
        and moved to phase `then` (if given) in the same hold of the lock: of two calls
        racing for that step, one gets it.

        Does not count as activity: each mode marks the steps that make progress.
        """
        with self._lock:
            rnd = self._rounds.get(round_id)
            if rnd is None:
                raise UnknownRound("no such round in flight at this node")
            if mode is not None and rnd.verified.purpose.mode != mode:
                raise ProtocolError(f"this call belongs to a {mode} round; this round is not one")
            if phases is not None:
                require_phase(rnd, phases)
            if then is not None:
                rnd.phase = then
        # Not activity by itself: only a step that makes progress keeps a round from
        # expiring, or a coordinator could keep keys alive with requests the node refuses.
        return rnd

    def _drop(self, round_id: str) -> NodeRound | None:
        with self._lock:
            rnd = self._rounds.pop(round_id, None)
        if rnd is not None:
            rnd.wipe_state()
        return rnd

    def audit_event(
        self, event: str, rnd_or_id: NodeRound | str, action: str, **details: object
    ) -> None:
        """Append one event about a round to the node's audit log (no identifier, ever).

        Given the round itself, the event carries the purpose and legal basis;
        given only an id (a refused or ended round), it carries none.
        """
        if isinstance(rnd_or_id, NodeRound):
            round_id, basis = rnd_or_id.round_id, rnd_or_id.basis
        else:
            round_id, basis = rnd_or_id, ""
        self.audit.append(
            event,
            actor="psi-node",
            on_behalf_of=self.config.partner_id,
            access_point=self.config.listen,
            action=action,
            basis=basis,
            round_id=round_id,
            details=details,
        )

    def audit_head(self) -> common_pb2.AuditHead:
        """The head of the node's audit log now, as a consent or a receipt carries it.

        The coordinator records it: a node log later cut off before it is caught.
        """
        return head_to_proto(self.audit.head())

    def blind_chunk(self, records: Sequence[bytes], key: RoundKey) -> bytes:
        """Step 1 for one chunk of this node's records: r * HashToGroup(x), packed.

        On the shared thread pool (`oprf.set_workers`); one seam per node, so that a
        test can make one node of an in-process network a corrupt origin.
        """
        return oprf.blind_inputs(records, key)

    def evaluate_chunk(self, key: RoundKey, packed: bytes) -> tuple[bytes, bytes]:
        """Step 2 for one chunk of another partner's points: k * B and one batched DLEQ
        proof of it (RFC 9497, section 2.2) against k * G, the key in this node's consent.

        One seam per node, so that a test can make one node evaluate with a wrong key.
        """
        points = max(1, len(packed) // oprf.POINT_BYTES)
        out, proofs = oprf.evaluate_and_prove(key, packed, points)
        return out, proofs[0]

    def rounds_in_flight(self) -> list[str]:
        with self._lock:
            return sorted(self._rounds)

    def reload_config(self) -> NodeConfig:
        """Read node.toml's policy and inputs again (every manifest, and on SIGHUP).

        What the process started with (listen address, keys, paths) stays. Raises
        ConfigError when the file does not load; the config in use is then unchanged,
        but the next manifest is refused until the file loads again: a policy that
        cannot be read is never taken to be the old one.
        """
        fresh = load_node_config(self.config.directory)
        with self._lock:
            changed = fresh.sha256 != self.config.sha256
            self.config = self.config.with_reloaded(fresh)
            config = self.config
        if changed:
            log.info("node.toml read again", policies=len(config.policies))
        if self._on_reload is not None:
            self._on_reload(config)
        return config

    # -- propose ---------------------------------------------------------------------

    def propose(self, signed: common_pb2.SignedManifest) -> common_pb2.SignedConsent:
        """Check a manifest and answer a signed consent or refusal."""
        now = self.now()
        try:
            verified = verify_manifest(
                signed, self._manifest_keys(now), now=now, network=self.network
            )
        except ManifestRejected as exc:
            return self._refuse_unverified(signed, str(exc), now)
        round_id = verified.round_id
        with self._lock:
            aborted = round_id in self._aborted
            replay = round_id in self._seen or round_id in self._rounds
        if aborted:
            return self._refuse(verified, ABORTED_BEFORE, now)
        if replay:
            return self._refuse(verified, "round id seen before (replayed manifest)", now)
        self._remember(round_id)
        seen: dict[str, object] = {}
        witnessed = head_from_proto(verified.manifest.coordinator_audit_head)
        if witnessed is not None:
            # Kept here, outside the coordinator: its log must still hold this head later.
            seen["coordinator_head"] = witnessed.as_details()
        self.audit_event(
            "manifest.seen",
            round_id,
            "R",
            purpose=verified.purpose.id,
            purpose_version=verified.purpose.version,
            partners=verified.partners,
            threshold=verified.purpose.threshold,
            manifest_sha256=verified.sha256.hex(),
            **seen,
        )
        try:
            # The policy in force is the file's, now: an edit takes effect at this round.
            config = self.reload_config()
        except ConfigError as exc:
            return self._refuse(
                verified, f"node.toml does not load, so no policy can be checked: {exc}", now
            )
        try:
            last = self.history.last(verified.purpose.id)
        except ConfigError as exc:
            return self._refuse(verified, str(exc), now)
        reason = refusal_reason(config, verified, last_consent=last, now=now)
        if reason is not None:
            return self._refuse(verified, reason, now)
        try:
            roster = self.accepted_roster(verified)
            key = self.round_signing_key(roster)
        except ConfigError as exc:
            return self._refuse(verified, str(exc), now)
        purpose = verified.purpose
        mode = MODES.get(purpose.mode)
        if mode is None:
            return self._refuse(verified, f"this node does not run {purpose.mode!r} rounds", now)
        spec = config.inputs[purpose.id].spec()
        try:
            inputs = read_input(spec, strict=config.strict_input)
        except (InputFileError, KruispuntError) as exc:
            return self._refuse(verified, f"input unusable: {exc}", now)
        report = inputs.report
        size = len(inputs.records)
        if size == 0:
            return self._refuse(verified, "input holds no valid records", now)
        if size > purpose.max_set_size:
            return self._refuse(
                verified,
                f"set of {size} records exceeds the purpose maximum {purpose.max_set_size}",
                now,
            )
        try:
            previous = self.set_sizes.last(purpose.id)
        except ConfigError as exc:
            return self._refuse(verified, str(exc), now)
        change = set_change(self.config.policies[purpose.id], previous, size)
        if change is not None:
            # The sizes stay here: this node's operator reads them, the coordinator does not.
            log.warning(
                "set size changed beyond the policy's limit",
                round_id=round_id,
                purpose=purpose.id,
                set_size=change.size,
                previous_set_size=change.previous,
                change_percent=change.percent,
            )
            return self._refuse(verified, change.reason, now, check=SET_CHANGE_CHECK)
        unfit = mode.admits(verified, size) if mode.admits is not None else None
        if unfit is not None:
            return self._refuse(verified, unfit, now)
        rnd = NodeRound(
            verified=verified,
            inputs=inputs,
            partner_id=self.config.partner_id,
            signing_key=key,
            roster=roster,
            state=mode.start(),
        )
        self.history.record(purpose.id, now)
        self.set_sizes.record(purpose.id, size)
        consent = common_pb2.Consent(
            round_id=round_id,
            partner_id=self.config.partner_id,
            granted=True,
            manifest_sha256=verified.sha256,
            legal_basis=purpose.legal_basis[self.config.partner_id],
            set_size=size,
            excluded_count=report.excluded,
            objected_count=report.objected,
            invalid_count=report.invalid,
            decided_at_unix=int(now.timestamp()),
            roster_sha256=roster.digest,
        )
        if mode.on_consent is not None:
            mode.on_consent(self, rnd, consent)
        with self._lock:
            aborted = round_id in self._aborted
            if not aborted:
                self._rounds[round_id] = rnd
        if aborted:  # the abort came while this node was still getting ready
            rnd.wipe_state()
            return self._refuse(verified, ABORTED_BEFORE, now)
        self.audit_event(
            "consent.given",
            rnd,
            "E",
            set_size=size,
            excluded=report.excluded,
            objected=report.objected,
            invalid=report.invalid,
            duplicates=report.duplicate,
        )
        consent.coordinator_audit_head.CopyFrom(verified.manifest.coordinator_audit_head)
        consent.node_audit_head.CopyFrom(self.audit_head())
        log.info(
            "consent given",
            round_id=round_id,
            purpose=purpose.id,
            set_size=size,
            excluded=report.excluded,
            objected=report.objected,
            invalid=report.invalid,
        )
        return sign_consent(rnd.signing_key, consent)

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        """The key for a refusal: the one the accepted roster names for this node, else
        the current key (a refusal is signed before, or instead of, any round key)."""
        try:
            roster = load_accepted_roster(self.config.state_dir)
            if roster is not None and self.config.partner_id in roster.ids:
                return self.round_signing_key(roster)
        except ConfigError:
            pass  # no usable roster: the coordinator cannot check any key of ours anyway
        return self._keys.current

    def round_signing_key(self, roster: Roster) -> Ed25519PrivateKey:
        """The key `roster` names for this node: its current one or, until the roster
        registers a rotation, the previous one (`psi_node.signing_keys`).

        Reads the key files again when it holds neither (a rotation since this process
        started); ConfigError if the node holds no key the roster names.
        """
        try:
            return self._keys.for_roster(roster, self.config.partner_id)
        except ConfigError:
            self._keys = load_node_keys(self.config)
            return self._keys.for_roster(roster, self.config.partner_id)

    def _manifest_keys(self, now: datetime) -> Verifier:
        """The keys a manifest may be signed with at `now`: the accepted roster's
        coordinator key (and its previous one within a rotation's overlap), or the key
        installed with the certificate while no roster is accepted."""
        try:
            roster = load_accepted_roster(self.config.state_dir)
        except ConfigError:
            roster = None  # accepted_roster refuses the round with the reason
        if roster is None:
            return self._coordinator_key
        return roster.coordinator_keys(now)

    def accepted_roster(self, verified: VerifiedManifest) -> Roster:
        """The roster this node's operator accepted, if the manifest names it and every
        partner of the round is on it; ConfigError with the reason otherwise."""
        roster = load_accepted_roster(self.config.state_dir)
        if roster is None:
            raise ConfigError(
                "no partner roster accepted at this node (psi-node roster accept DIR FILE "
                "--digest HEX, with the digest from the covenant)"
            )
        if not hmac.compare_digest(verified.roster_sha256, roster.digest):
            raise ConfigError(
                f"the manifest is for roster {verified.roster_sha256.hex()[:16]}..., this node "
                f"accepted roster {roster.digest_hex[:16]}... (version {roster.version})"
            )
        strangers = [p for p in verified.partners if p not in roster.ids]
        if strangers:
            raise ConfigError(f"partner(s) not on the accepted roster: {', '.join(strangers)}")
        return roster

    def _refuse(
        self, verified: VerifiedManifest, reason: str, now: datetime, **details: object
    ) -> common_pb2.SignedConsent:
        """A signed refusal with `reason`, audited with `details` (e.g. the check that refused)."""
        self.audit_event(
            "consent.refused",
            verified.round_id,
            "E",
            reason=reason,
            purpose=verified.purpose.id,
            **details,
        )
        log.warning("consent refused", round_id=verified.round_id, reason=reason)
        consent = common_pb2.Consent(
            round_id=verified.round_id,
            partner_id=self.config.partner_id,
            granted=False,
            reason=reason,
            manifest_sha256=verified.sha256,
            decided_at_unix=int(now.timestamp()),
            coordinator_audit_head=verified.manifest.coordinator_audit_head,
            node_audit_head=self.audit_head(),
        )
        return sign_consent(self.signing_key, consent)

    def _refuse_unverified(
        self, signed: common_pb2.SignedManifest, reason: str, now: datetime
    ) -> common_pb2.SignedConsent:
        digest = hashlib.sha256(signed.manifest).digest()
        manifest = common_pb2.RoundManifest()
        try:
            manifest.ParseFromString(signed.manifest)
            round_id = manifest.round_id
        except DecodeError:
            round_id = ""
        # Unverified text: keep it only if it has the shape of our round ids.
        if not is_round_id(round_id):
            round_id = ""
        self.audit_event(
            "manifest.rejected", round_id, "E", reason=reason, manifest_sha256=digest.hex()
        )
        log.warning("manifest rejected", round_id=round_id, reason=reason)
        consent = common_pb2.Consent(
            round_id=round_id,
            partner_id=self.config.partner_id,
            granted=False,
            reason=reason,
            manifest_sha256=digest,
            decided_at_unix=int(now.timestamp()),
            node_audit_head=self.audit_head(),
        )
        return sign_consent(self.signing_key, consent)

    # -- each mode's calls (psi_node.modes), one method per RPC -------------------------

    def blind(
        self, round_id: str, consents: Iterable[common_pb2.SignedConsent]
    ) -> Iterator[network.Chunk]:
        """Network phase 1: this node's blinded points, chunk by chunk (`network.blind`)."""
        return self.metrics.timed("blind", network.blind(self, round_id, consents), _points)

    def evaluate(
        self, round_id: str, origin: str, step: int, batches: Iterable[network.Received]
    ) -> Iterator[network.Evaluated]:
        """Network phase 2: another partner's points under this node's key (`network.evaluate`)."""
        evaluated = network.evaluate(self, round_id, origin, step, batches)
        return self.metrics.timed("evaluate", evaluated, _points)

    def finalize(self, round_id: str, batches: Iterable[network.Received]) -> Iterator[bytes]:
        """Network phase 3: own points back, answered with the signed tag commitment."""
        own = self.metrics.counted("finalize", batches, _points)
        return self.metrics.timed("finalize", network.finalize(self, round_id, own))

    def reveal(
        self, round_id: str, roots: Mapping[str, bytes]
    ) -> Iterator[tuple[int, bytes, bytes]]:
        """Network phase 4: every partner's commitment in, tags and salts out (`network.reveal`)."""
        return self.metrics.timed("reveal", network.reveal(self, round_id, roots))

    def deliver(self, parts: Iterator[node_pb2.RoundResults]) -> node_pb2.DeliveryReceipt:
        """Network results, in parts: stage what the coordinator found (`network.deliver`)."""
        return network.deliver(self, parts)

    def bilateral_request(self, round_id: str) -> node_pb2.BilateralPayload:
        """Two-party step 1, at the client (`bilateral.request`)."""
        return bilateral.request(self, round_id)

    def bilateral_response(self, message: node_pb2.BilateralPayload) -> node_pb2.BilateralPayload:
        """Two-party step 2, at the server (`bilateral.response`)."""
        return bilateral.response(self, message)

    def bilateral_setup(self, round_id: str) -> node_pb2.BilateralPayload:
        """Two-party step 3, at the server (`bilateral.setup`)."""
        return bilateral.setup(self, round_id)

    def bilateral_result(self, exchange: node_pb2.BilateralExchange) -> node_pb2.DeliveryReceipt:
        """Two-party step 4, at the client (`bilateral.result`)."""
        return bilateral.result(self, exchange)

    # -- the end of every round --------------------------------------------------------

    def commit(self, round_id: str) -> node_pb2.DeliveryReceipt:
        """Publish staged results and end the round here."""
        rnd = self.get_round(round_id, phases=(STAGED,))
        assert rnd.staged is not None
        try:
            path = rnd.publish(rnd.staged)
        finally:
            self._drop(round_id)
        self.audit_event(
            "results.written",
            rnd,
            "C",
            flagged_count=rnd.staged.flagged_count,
            path=str(path),
            result_sha256=rnd.staged.sha256.hex(),
        )
        log.info(
            "results written", round_id=round_id, flagged=rnd.staged.flagged_count, path=str(path)
        )
        return node_pb2.DeliveryReceipt(
            round_id=round_id,
            flagged_count=rnd.staged.flagged_count,
            result_path=str(path),
            result_sha256=rnd.staged.sha256,
            node_audit_head=self.audit_head(),
        )

    def abort(self, round_id: str, reason: str) -> bool:
        """Drop a round in flight: wipe its key and records and remove staged results.

        Results this node has committed stay: an abort that arrives after commit (from a
        coordinator that wants results gone) is refused and audited as an attack.
        """
        if not is_round_id(round_id):
            return False  # never used as a file name, never logged
        seen = True
        with self._lock:
            rnd = self._rounds.pop(round_id, None)
            if rnd is None:
                # Perhaps its Propose has not finished here yet: it must not start it
                # then. Claimed in the same hold of the lock as the look, or a Propose
                # finishing in between would start the round after all.
                self._aborted.add(round_id)
                seen = round_id in self._seen
        if rnd is not None:
            rnd.wipe_state()
        removed = discard_staged(self.config.results_dir, round_id)
        if rnd is None and not removed:
            if published_results(self.config.results_dir, round_id):
                raise AttackRefused(
                    "the round's results are committed; an abort cannot remove them"
                )
            if not seen:
                self._remember(round_id)
            return False
        reason = safe_reason(reason)
        self.audit_event(
            "round.aborted", rnd or round_id, "D", reason=reason, staged_removed=removed
        )
        log.warning("round aborted", round_id=round_id, reason=reason)
        return True

    def discard_stale(self) -> list[str]:
        """At start: staged results of rounds no longer in flight are never published."""
        stale = [rid for rid in stale_staged(self.config.results_dir) if is_round_id(rid)]
        for round_id in stale:
            discard_staged(self.config.results_dir, round_id)
            self.audit_event(
                "round.aborted",
                round_id,
                "D",
                reason="staged results found at start; the round had ended",
                staged_removed=True,
            )
            log.warning("stale staged results removed", round_id=round_id)
        return stale

    def record_rejection(self, method: str, round_id: str, error: KruispuntError) -> None:
        """Audit a request this node refused (malformed, out of order, unknown round).

        A request that fails authentication (`AttackRefused`) is audited as
        `attack.refused`, and the round it names is dropped with its keys: nothing more
        of it is done at this node.
        """
        if isinstance(error, AttackRefused) and is_round_id(round_id):
            with self._lock:
                rnd = self._rounds.get(round_id)
            if rnd is not None and rnd.phase != STAGED:
                self._drop(round_id)
        self.audit_event(
            "attack.refused" if isinstance(error, AttackRefused) else "request.rejected",
            round_id if is_round_id(round_id) else "",
            "E",
            method=method,
            status=error.status.name,
            reason=safe_reason(str(error)),
        )
        log.warning(
            "request rejected",
            method=method,
            status=error.status.name,
            reason=safe_reason(str(error)),
        )

    def expire_idle(self) -> list[str]:
        """Abort rounds idle for idle_timeout seconds (coordinator gone) or past their
        manifest's expiry: no round key outlives the manifest it was made for."""
        cutoff = time.monotonic() - self.idle_timeout
        now = int(self.now().timestamp())
        with self._lock:
            idle = [rid for rid, r in self._rounds.items() if r.last_activity < cutoff]
            expired = [
                rid
                for rid, r in self._rounds.items()
                if r.verified.manifest.expires_at_unix <= now and rid not in idle
            ]
        for rid in idle:
            self.abort(rid, "no activity from the coordinator within the idle timeout")
        for rid in expired:
            self.abort(rid, "the round's manifest expired")
        return idle + expired

    def purge_results(self) -> list[Path]:
        """Delete result files whose retention has ended; each deletion is audited and signed."""
        return purge_expired_results(
            self.config,
            self.audit,
            self.now(),
            actor="psi-node",
            signing_key=self.signing_key,
            network=self.network,
        )

    def sign_missing_receipts(self) -> list[int]:
        """At start: sign the receipt of any logged deletion left without one (a crash)."""
        return sign_missing_receipts(
            self.config, self.audit, signing_key=self.signing_key, network=self.network
        )

    def deletions(self, after_seq: int) -> node_pb2.DeletionReceipts:
        """The signed deletion receipts after the one the coordinator holds (`after_seq`)."""
        return node_pb2.DeletionReceipts(receipts=self.receipts.after(after_seq))

    def close(self) -> None:
        """Abort every round in flight (shutdown)."""
        for rid in self.rounds_in_flight():
            self.abort(rid, "node shutting down")


def _points(chunk: network.Chunk | network.Evaluated | network.Received) -> int:
    """How many points a chunk of a stream carries (the metrics count them)."""
    return len(chunk[1]) // wire.POINT_BYTES
