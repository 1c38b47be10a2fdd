"""Key handovers in an audit chain (`kruispunt.audit.handover`), without any store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from kruispunt import signing
from kruispunt.audit import GENESIS_HASH, AuditEvent, seal, verify_events, verify_excerpt
from kruispunt.audit.handover import HANDOVER_EVENT, handover_details, trusted_keys

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def chain(keys, per_key: int = 2) -> list[AuditEvent]:
    """`per_key` events under each key, a handover between consecutive keys."""
    out: list[AuditEvent] = []

    def add(event: str, details, key) -> None:
        prev = out[-1].hash if out else GENESIS_HASH
        out.append(
            seal(
                seq=len(out) + 1,
                prev_hash=prev,
                time=T0,
                event=event,
                actor="operator:test",
                on_behalf_of="testnet",
                access_point="cli",
                action="U",
                basis="",
                round_id="",
                details=details,
                signing_key=key,
            )
        )

    for i, key in enumerate(keys):
        for _ in range(per_key):
            add("operator.action", {}, key)
        if i + 1 < len(keys):
            prev = out[-1].hash
            add(HANDOVER_EVENT, handover_details(prev, key.public_key(), keys[i + 1], "r"), key)
    return out


@pytest.fixture
def keys():
    return [signing.generate_signing_key() for _ in range(3)]


class TestHandover:
    @pytest.mark.parametrize("anchor", [0, 1, 2])
    def test_any_key_of_the_chain_verifies_all_of_it(self, keys, anchor):
        """A→B→C: holding A, B or C alone verifies every event."""
        events = chain(keys)
        report = verify_events(events, keys[anchor].public_key())
        assert report.ok, report.reason
        assert report.count == len(events)

    def test_several_keys_verify_too(self, keys):
        """Passing every key of the period verifies as well."""
        events = chain(keys)
        assert verify_events(events, [k.public_key() for k in keys]).ok

    def test_the_new_key_alone_trusts_the_history_it_endorsed(self, keys):
        """trusted_keys walks back from C through the endorsements to B and A."""
        trusted = trusted_keys(chain(keys), [keys[2].public_key()])
        assert set(trusted) == {signing.key_id(k.public_key()) for k in keys}

    def test_a_key_is_refused_after_its_handover(self, keys):
        """An event signed by A after A handed over to B breaks the chain there."""
        events = chain(keys[:2])
        bad = seal(
            seq=len(events) + 1,
            prev_hash=events[-1].hash,
            time=T0,
            event="operator.action",
            actor="operator:test",
            on_behalf_of="testnet",
            access_point="cli",
            action="U",
            basis="",
            round_id="",
            details={},
            signing_key=keys[0],
        )
        report = verify_events([*events, bad], keys[0].public_key())
        assert not report.ok
        assert report.first_bad_seq == bad.seq
        assert report.reason == "signed by a retired key (handed over at event 3)"

    def test_a_forged_history_is_refused_when_the_first_key_is_held(self, keys):
        """The holder of B alone could invent a history before its handover; an officer who
        also holds the real first key A is not fooled: the chain must start under A."""
        real = chain(keys[:2])
        fake = chain([signing.generate_signing_key(), keys[1]])
        assert verify_events(fake, keys[1].public_key()).ok  # B vouches for what B signed
        report = verify_events(fake, [keys[0].public_key(), keys[1].public_key()])
        assert not report.ok
        assert report.first_bad_seq == 1
        assert verify_events(real, [keys[0].public_key(), keys[1].public_key()]).ok

    def test_a_handover_naming_another_previous_key_is_refused(self, keys):
        """The handover must name the key that seals it."""
        events = chain(keys[:2])
        other = signing.generate_signing_key()
        details = handover_details(events[1].hash, other.public_key(), keys[1], "r")
        forged = seal(
            seq=3,
            prev_hash=events[1].hash,
            time=T0,
            event=HANDOVER_EVENT,
            actor="operator:test",
            on_behalf_of="testnet",
            access_point="cli",
            action="U",
            basis="",
            round_id="",
            details=details,
            signing_key=keys[0],
        )
        report = verify_events([*events[:2], forged], keys[0].public_key())
        assert (
            report.reason == "key handover names another previous key than the one that signed it"
        )

    def test_a_malformed_handover_is_refused(self, keys):
        """A key_rotated event without the keys is a broken chain, not a silent no-op."""
        events = chain(keys[:1])
        bad = seal(
            seq=3,
            prev_hash=events[-1].hash,
            time=T0,
            event=HANDOVER_EVENT,
            actor="operator:test",
            on_behalf_of="testnet",
            access_point="cli",
            action="U",
            basis="",
            round_id="",
            details={"reason": "r"},
            signing_key=keys[0],
        )
        report = verify_events([*events, bad], keys[0].public_key())
        assert report.reason.startswith("key handover is malformed")

    def test_an_excerpt_after_the_handover_needs_the_new_key_or_the_handover(self, keys):
        """An excerpt of events after the handover verifies under the new key, or under the
        old one when it holds the handover; under the old key alone it does not."""
        events = chain(keys[:2])
        tail = events[3:]
        assert verify_excerpt(tail, keys[1].public_key()).ok
        assert not verify_excerpt(tail, keys[0].public_key()).ok
        assert verify_excerpt(events[2:], keys[0].public_key()).ok

    def test_an_endorsement_for_another_point_in_the_chain_is_refused(self, keys):
        """The endorsement covers prev_hash: moved to another place it does not verify."""
        events = chain(keys[:2])
        handover = events[2]
        details = dict(handover.details)
        moved = handover_details(events[0].hash, keys[0].public_key(), keys[1], "r")
        details["endorsement"] = moved["endorsement"]
        resealed = seal(
            seq=3,
            prev_hash=events[1].hash,
            time=T0,
            event=HANDOVER_EVENT,
            actor="operator:test",
            on_behalf_of="testnet",
            access_point="cli",
            action="U",
            basis="",
            round_id="",
            details=details,
            signing_key=keys[0],
        )
        assert dataclasses.replace(resealed).details["endorsement"] == moved["endorsement"]
        report = verify_events([*events[:2], resealed], keys[0].public_key())
        assert report.reason == "key handover is not endorsed by the new key"
