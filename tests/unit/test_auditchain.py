"""The shared audit chain: encoding, hashing, signing, verification, guard and exports."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from kruispunt import audit, signing
from kruispunt.audit import (
    FIELDS,
    GENESIS_HASH,
    AuditEvent,
    ChainHead,
    canonical_bytes,
    check_no_identifiers,
    check_required_details,
    compute_hash,
    dump_csv,
    dump_jsonl,
    event_from_dict,
    event_to_dict,
    format_time,
    load_csv,
    load_jsonl,
    seal,
    verify_events,
    verify_excerpt,
)
from kruispunt.errors import AuditChainBroken

# Synthetic, elfproef-valid BSN (9*1+8*1+7*1+6*2+5*2+4*2+3*3+2*3-1*3 = 66 = 6*11).
BSN = "111222333"
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def make_chain(
    key: Ed25519PrivateKey, n: int, *, round_of: Callable[[int], str] | None = None
) -> list[AuditEvent]:
    """n sealed events, one second apart, chained from genesis."""
    events: list[AuditEvent] = []
    prev = GENESIS_HASH
    for i in range(1, n + 1):
        event = seal(
            seq=i,
            prev_hash=prev,
            time=T0 + timedelta(seconds=i),
            event="phase.done",
            actor="coordinator",
            on_behalf_of="network-utrecht",
            access_point="coordinator.example:7000",
            action="E",
            basis="armoede-2025; AVG art. 6(1)(e)",
            round_id=round_of(i) if round_of else "r20250301T093000-1a2b3c4d",
            details={"phase": "blind", "seconds": 1.25, "count": i},
            signing_key=key,
        )
        events.append(event)
        prev = event.hash
    return events


def reseal(event: AuditEvent, key: Ed25519PrivateKey, **changes: object) -> AuditEvent:
    """What a forger holding `key` can do: change fields, recompute hash, sign anew."""
    draft = dataclasses.replace(event, **changes)  # type: ignore[arg-type]
    return seal(
        seq=draft.seq,
        prev_hash=draft.prev_hash,
        time=datetime.fromisoformat(draft.time),
        event=draft.event,
        actor=draft.actor,
        on_behalf_of=draft.on_behalf_of,
        access_point=draft.access_point,
        action=draft.action,
        basis=draft.basis,
        round_id=draft.round_id,
        details=draft.details,
        signing_key=key,
    )


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return signing.generate_signing_key()


@pytest.fixture
def chain(key: Ed25519PrivateKey) -> list[AuditEvent]:
    return make_chain(key, 6)


class TestSeal:
    def test_hash_is_sha256_of_prev_hash_and_canonical_fields(
        self, chain: list[AuditEvent]
    ) -> None:
        """hash = SHA-256(prev_hash || sorted compact JSON of all fields but hash/signature)."""
        event = chain[1]
        body = {k: v for k, v in event_to_dict(event).items() if k not in ("hash", "signature")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert canonical_bytes(event) == canonical.encode("utf-8")
        expected = hashlib.sha256(bytes.fromhex(chain[0].hash) + canonical.encode()).hexdigest()
        assert event.hash == expected == compute_hash(event)
        assert event.prev_hash == chain[0].hash

    def test_first_event_chains_from_32_zero_bytes(self, chain: list[AuditEvent]) -> None:
        """The genesis prev_hash is 32 zero bytes, hex-encoded."""
        assert chain[0].seq == 1
        assert chain[0].prev_hash == "00" * 32 == GENESIS_HASH

    def test_signature_covers_the_hash_under_the_audit_context(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """The signature is Ed25519 over the raw hash with context kruispunt/audit/v1."""
        event = chain[2]
        signing.verify(
            key.public_key(),
            b"kruispunt/audit/v1",
            bytes.fromhex(event.hash),
            bytes.fromhex(event.signature),
        )
        assert event.key_id == signing.key_id(key.public_key())
        with pytest.raises(Exception, match="signature"):
            signing.verify(
                key.public_key(),
                b"kruispunt/manifest/v1",
                bytes.fromhex(event.hash),
                bytes.fromhex(event.signature),
            )

    def test_time_is_utc_iso8601_with_milliseconds(self) -> None:
        """Times are converted to UTC and written with exactly three fraction digits and Z."""
        cet = timezone(timedelta(hours=1))
        assert format_time(datetime(2025, 3, 1, 10, 30, 0, 125_999, tzinfo=cet)) == (
            "2025-03-01T09:30:00.125Z"
        )
        assert format_time(datetime(2025, 3, 1, 9, 30, tzinfo=UTC)) == "2025-03-01T09:30:00.000Z"

    def test_naive_time_is_refused(self) -> None:
        """A clock returning a naive datetime is a bug: ValueError, nothing sealed."""
        with pytest.raises(ValueError, match="timezone-aware"):
            format_time(datetime(2025, 3, 1, 9, 30))

    def test_details_are_copied_when_sealed(self, key: Ed25519PrivateKey) -> None:
        """Changing the caller's dict after sealing does not change the sealed event."""
        details: dict[str, object] = {"count": 3, "partners": ["a", "b"]}
        event = seal(
            seq=1, prev_hash=GENESIS_HASH, time=T0, event="tally.summary", actor="c",
            on_behalf_of="n", access_point="x", action="E", basis="", round_id="",
            details=details, signing_key=key,
        )  # fmt: skip
        details["count"] = 4
        assert event.details == {"count": 3, "partners": ["a", "b"]}
        assert verify_events([event], key.public_key()).ok

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"seq": 0}, "seq"),
            ({"prev_hash": "ab"}, "prev_hash"),
            ({"event": "Round Created"}, "event"),
            ({"event": ""}, "event"),
            ({"action": ""}, "action"),
            ({"actor": ""}, "actor"),
        ],
    )
    def test_malformed_fields_are_refused(
        self, key: Ed25519PrivateKey, changes: dict[str, object], message: str
    ) -> None:
        """seal() refuses a bad seq, prev_hash, event name, empty action or actor."""
        fields: dict[str, object] = {
            "seq": 1, "prev_hash": GENESIS_HASH, "time": T0, "event": "round.created",
            "actor": "alice", "on_behalf_of": "n", "access_point": "cli", "action": "C",
            "basis": "", "round_id": "", "details": {}, "signing_key": key,
        }  # fmt: skip
        fields.update(changes)
        with pytest.raises(ValueError, match=message):
            seal(**fields)  # type: ignore[arg-type]


class TestVerifyEvents:
    def test_intact_chain_verifies(self, key: Ed25519PrivateKey, chain: list[AuditEvent]) -> None:
        """An untouched chain verifies, with its count and head."""
        report = verify_events(chain, key.public_key())
        assert report.ok
        assert report.count == 6
        assert report.first_bad_seq is None
        assert report.head == ChainHead(6, chain[-1].hash)
        report.raise_if_broken()

    def test_empty_chain_verifies(self, key: Ed25519PrivateKey) -> None:
        """No events is a valid (empty) chain."""
        report = verify_events([], key.public_key())
        assert report.ok
        assert report.count == 0
        assert report.head is None

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("time", "2025-03-01T09:30:03.000Z"),
            ("event", "consent.given"),
            ("actor", "mallory"),
            ("on_behalf_of", "other-org"),
            ("access_point", "10.0.0.66"),
            ("action", "D"),
            ("basis", "none"),
            ("round_id", "r20250301T093000-ffffffff"),
            ("details", {"phase": "blind", "seconds": 1.25, "count": 99}),
            ("key_id", "0000000000000000"),
        ],
    )
    def test_edited_field_is_caught_at_its_seq(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent], name: str, value: object
    ) -> None:
        """Editing any covered field of event 4 breaks the chain at seq 4 (hash mismatch)."""
        chain[3] = dataclasses.replace(chain[3], **{name: value})  # type: ignore[arg-type]
        report = verify_events(chain, key.public_key())
        assert not report.ok
        assert report.first_bad_seq == 4
        assert "hash does not match" in report.reason
        assert report.count == 3

    def test_mutated_details_dict_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Mutating a sealed event's details in place is tampering too."""
        chain[2].details["count"] = 1000
        assert verify_events(chain, key.public_key()).first_bad_seq == 3

    def test_deleted_event_is_named(self, key: Ed25519PrivateKey, chain: list[AuditEvent]) -> None:
        """Deleting event 3 reports seq 3 as missing."""
        del chain[2]
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert "missing" in report.reason

    def test_deleted_and_renumbered_event_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Deleting event 3 and renumbering the rest still breaks at seq 3 (prev_hash)."""
        del chain[2]
        chain[2:] = [dataclasses.replace(e, seq=e.seq - 1) for e in chain[2:]]
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert "prev_hash" in report.reason

    def test_deleted_first_event_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Removing the first event is a missing seq 1."""
        assert verify_events(chain[1:], key.public_key()).first_bad_seq == 1

    def test_reordered_events_are_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Swapping events 3 and 4 (stored order) breaks at seq 3."""
        chain[2], chain[3] = chain[3], chain[2]
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_swapped_seqs_are_caught(self, key: Ed25519PrivateKey, chain: list[AuditEvent]) -> None:
        """Swapping the seq numbers of events 3 and 4 (order by seq) breaks at seq 3."""
        third, fourth = chain[2], chain[3]
        chain[2] = dataclasses.replace(fourth, seq=3)
        chain[3] = dataclasses.replace(third, seq=4)
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_duplicated_event_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Replaying event 2 after itself is an out-of-order seq 2 where 3 was expected."""
        chain.insert(2, chain[1])
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_inserted_event_signed_by_another_key_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A forged event slotted in at seq 3, correctly linked but forger-signed, fails at 3."""
        mallory = signing.generate_signing_key()
        forged = reseal(chain[2], mallory, actor="mallory")
        rest = [dataclasses.replace(e, seq=e.seq + 1) for e in chain[2:]]
        tampered = [*chain[:2], forged, *rest]
        report = verify_events(tampered, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 3)
        assert "another key" in report.reason

    def test_edited_and_resigned_with_another_key_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """An edit whose hash and signature were recomputed with a forger's key fails at its seq."""
        chain[4] = reseal(chain[4], signing.generate_signing_key(), details={"count": 0})
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 5)
        assert "another key" in report.reason

    def test_forger_claiming_our_key_id_fails_the_signature(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A forger who copies our key_id into the hashed fields still fails the signature."""
        mallory = signing.generate_signing_key()
        edited = dataclasses.replace(chain[1], actor="mallory")
        digest = compute_hash(edited)
        signature = signing.sign(mallory, b"kruispunt/audit/v1", bytes.fromhex(digest))
        chain[1] = dataclasses.replace(edited, hash=digest, signature=signature.hex())
        report = verify_events(chain, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 2)
        assert "signature does not verify" in report.reason

    def test_whole_chain_resigned_fails_under_the_real_key(self, key: Ed25519PrivateKey) -> None:
        """A chain rebuilt from scratch by a forger verifies only under the forger's key."""
        mallory = signing.generate_signing_key()
        forged = make_chain(mallory, 3)
        assert verify_events(forged, mallory.public_key()).ok
        report = verify_events(forged, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 1)

    def test_garbled_signature_is_caught(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A signature that is not hex, or flipped, fails at its seq."""
        chain[5] = dataclasses.replace(chain[5], signature="zz")
        assert verify_events(chain, key.public_key()).first_bad_seq == 6
        flipped = (
            "0" + chain[4].signature[1:]
            if chain[4].signature[0] != "0"
            else ("1" + chain[4].signature[1:])
        )
        chain[4] = dataclasses.replace(chain[4], signature=flipped)
        assert verify_events(chain, key.public_key()).first_bad_seq == 5

    def test_truncated_tail_needs_the_expected_head(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """Dropping the last two events verifies alone but fails against the recorded head."""
        head = chain[-1].head
        assert verify_events(chain[:4], key.public_key()).ok
        report = verify_events(chain[:4], key.public_key(), expected_head=head)
        assert (report.ok, report.first_bad_seq) == (False, 5)
        assert "truncated" in report.reason

    def test_expected_head_inside_a_longer_chain_is_checked(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A head taken earlier must match the event now stored at its seq."""
        assert verify_events(chain, key.public_key(), expected_head=chain[2].head).ok
        wrong = ChainHead(3, chain[3].hash)
        report = verify_events(chain, key.public_key(), expected_head=wrong)
        assert (report.ok, report.first_bad_seq) == (False, 3)

    def test_rewritten_tail_differs_from_the_expected_head(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A tail cut off and regrown by the same signer no longer matches the recorded head."""
        head = chain[-1].head
        regrown = [*chain[:5], reseal(chain[5], key, details={"count": 0})]
        assert verify_events(regrown, key.public_key()).ok
        report = verify_events(regrown, key.public_key(), expected_head=head)
        assert (report.ok, report.first_bad_seq) == (False, 6)

    def test_raise_if_broken_carries_the_seq(
        self, key: Ed25519PrivateKey, chain: list[AuditEvent]
    ) -> None:
        """A failed report raises AuditChainBroken with the first bad seq."""
        del chain[1]
        with pytest.raises(AuditChainBroken) as caught:
            verify_events(chain, key.public_key()).raise_if_broken()
        assert caught.value.seq == 2


class TestVerifyExcerpt:
    def test_one_rounds_events_check_out(self, key: Ed25519PrivateKey) -> None:
        """A round's events taken out of a longer chain verify one by one."""
        chain = make_chain(key, 8, round_of=lambda i: f"r20250301T0930{i % 2:02d}-1a2b3c4d")
        excerpt = [e for e in chain if e.round_id.endswith("01-1a2b3c4d")]
        assert [e.seq for e in excerpt] == [1, 3, 5, 7]
        assert verify_excerpt(excerpt, key.public_key()).ok
        assert verify_excerpt(chain, key.public_key()).ok

    def test_edited_event_in_an_excerpt_is_caught(self, key: Ed25519PrivateKey) -> None:
        """An edited event in an excerpt fails at its seq."""
        excerpt = make_chain(key, 6)[1::2]
        excerpt[1] = dataclasses.replace(excerpt[1], details={})
        report = verify_excerpt(excerpt, key.public_key())
        assert (report.ok, report.first_bad_seq) == (False, 4)

    def test_excerpt_out_of_order_is_caught(self, key: Ed25519PrivateKey) -> None:
        """An excerpt must keep increasing seqs."""
        excerpt = make_chain(key, 6)[::2]
        excerpt.reverse()
        assert not verify_excerpt(excerpt, key.public_key()).ok


class TestIdentifierGuard:
    @pytest.mark.parametrize(
        "details",
        [
            {"note": BSN},
            {"note": f"record bsn:{BSN} skipped"},
            {"bsn": int(BSN)},
            {"bsn": 11222333},  # an 8-digit number: a BSN that lost its leading zero
            {"rows": [1, 2, {"x": BSN}]},
            {BSN: 1},
            {"household": "3511AB"},
            {"household": "3511 AB 12"},
            {"where": "address:1011AB:1:A"},
            {"bsn_float": 111222333.0},
        ],
    )
    def test_identifier_like_details_are_refused(self, details: dict[str, object]) -> None:
        """BSN-like digit runs and numbers and postcodes anywhere in details are refused."""
        with pytest.raises(ValueError, match="refused") as caught:
            check_no_identifiers(details)
        assert BSN not in str(caught.value)
        assert "3511" not in str(caught.value)
        assert "1011" not in str(caught.value)

    @pytest.mark.parametrize(
        "details",
        [
            {"set_size": 1200, "flagged_count": 7, "threshold": 3},
            {"round": "r20250301T093000-12345678"},
            {"manifest_sha256": "1234567890" * 6 + "abcd"},
            {"result_sha256": hashlib.sha256(b"x").hexdigest()},
            {"request": "12345678-1234-1234-1234-123456789012"},
            {"reason": "deadline exceeded after 3000 ms"},
            {"reason": "partner gemeente-utrecht refused: purpose not agreed"},
            {"legal_basis": "AVG art. 6(1)(c); Wgs art. 3a", "histogram": {"2": 14, "3": 2}},
            {"count": 9_999_999, "big": 1_000_000_000, "ratio": 0.25, "flag": True, "x": None},
            {"sizes": {"woningcorporatie-1": 5000, "schuldhulp-2": 812}},
        ],
    )
    def test_aggregates_and_ids_pass(self, details: dict[str, object]) -> None:
        """Counts, partner ids, round ids, digests, UUIDs and free-text reasons pass the guard."""
        check_no_identifiers(details)

    def test_text_fields_are_guarded_too(self) -> None:
        """A BSN in a text field such as actor or basis is refused, naming only the field."""
        with pytest.raises(ValueError, match="actor") as caught:
            check_no_identifiers({}, actor=f"user-{BSN}")
        assert BSN not in str(caught.value)

    @pytest.mark.parametrize(
        ("details", "error"),
        [
            ({"x": float("nan")}, ValueError),
            ({"x": b"bytes"}, TypeError),
            ({"x": {1: "int key"}}, TypeError),
            ({"x": {1, 2}}, TypeError),
        ],
    )
    def test_non_json_details_are_refused(
        self, details: dict[str, object], error: type[Exception]
    ) -> None:
        """Details must be plain JSON: no NaN, bytes, sets or non-string keys."""
        with pytest.raises(error):
            check_no_identifiers(details)

    def test_seal_refuses_before_signing(self, key: Ed25519PrivateKey) -> None:
        """seal() refuses a BSN-looking detail with ValueError."""
        with pytest.raises(ValueError, match="BSN-like"):
            seal(
                seq=1, prev_hash=GENESIS_HASH, time=T0, event="records.sent", actor="psi-node",
                on_behalf_of="p", access_point="x", action="E", basis="", round_id="",
                details={"first": BSN}, signing_key=key,
            )  # fmt: skip


class TestRequiredDetails:
    def test_missing_key_is_refused(self) -> None:
        """A coordinator consent.given without set_size is refused."""
        with pytest.raises(ValueError, match="set_size"):
            check_required_details(
                "consent.given", {"partner": "a"}, audit.COORDINATOR_REQUIRED_DETAILS
            )

    @pytest.mark.parametrize("bad", [-1, True, "12", 1.5, None])
    def test_counts_must_be_non_negative_integers(self, bad: object) -> None:
        """A count that is negative, a bool, a string or a float is refused."""
        with pytest.raises(ValueError, match="count"):
            check_required_details(
                "results.written", {"flagged_count": bad}, audit.NODE_REQUIRED_DETAILS
            )

    def test_set_sizes_must_map_ids_to_counts(self) -> None:
        """The coordinator's set_sizes must map partner ids to counts."""
        required = audit.COORDINATOR_REQUIRED_DETAILS
        check_required_details("set_sizes", {"set_sizes": {"a": 3, "b": 4}}, required)
        with pytest.raises(ValueError, match="set_sizes"):
            check_required_details("set_sizes", {"set_sizes": {"a": "3"}}, required)

    def test_other_events_need_nothing(self) -> None:
        """Events the cross-check does not read have no required keys."""
        check_required_details("phase.done", {}, audit.COORDINATOR_REQUIRED_DETAILS)


class TestExports:
    def test_jsonl_round_trips(self, key: Ed25519PrivateKey, chain: list[AuditEvent]) -> None:
        """A JSON Lines export reads back to equal events that still verify."""
        out = io.StringIO()
        assert dump_jsonl(chain, out) == 6
        lines = out.getvalue().splitlines()
        assert len(lines) == 6
        assert set(json.loads(lines[0])) == set(FIELDS)
        back = load_jsonl(io.StringIO(out.getvalue()))
        assert back == chain
        assert verify_events(back, key.public_key()).ok

    def test_csv_round_trips(self, key: Ed25519PrivateKey, chain: list[AuditEvent]) -> None:
        """A CSV export (header + one row per event) reads back to equal, verifying events."""
        out = io.StringIO()
        assert dump_csv(chain, out) == 6
        text = out.getvalue()
        assert text.splitlines()[0] == ",".join(FIELDS)
        back = load_csv(io.StringIO(text))
        assert back == chain
        assert verify_events(back, key.public_key()).ok

    def test_bad_jsonl_line_is_named(self, chain: list[AuditEvent]) -> None:
        """A JSON Lines export with a broken line fails naming the line number."""
        out = io.StringIO()
        dump_jsonl(chain, out)
        lines = out.getvalue().splitlines()
        lines[2] = lines[2][:40]
        with pytest.raises(ValueError, match="line 3"):
            load_jsonl(io.StringIO("\n".join(lines)))

    def test_bad_csv_header_is_refused(self) -> None:
        """A CSV without our header is not read."""
        with pytest.raises(ValueError, match="header"):
            load_csv(io.StringIO("a,b,c\n1,2,3\n"))

    def test_event_from_dict_checks_shape(self, chain: list[AuditEvent]) -> None:
        """Missing, extra or mistyped fields are refused, naming the field."""
        data = event_to_dict(chain[0])
        with pytest.raises(ValueError, match="signature"):
            event_from_dict({k: v for k, v in data.items() if k != "signature"})
        with pytest.raises(ValueError, match="extra"):
            event_from_dict({**data, "extra": 1})
        with pytest.raises(ValueError, match="seq"):
            event_from_dict({**data, "seq": "1"})
        with pytest.raises(ValueError, match="details"):
            event_from_dict({**data, "details": []})
        with pytest.raises(ValueError, match="hash"):
            event_from_dict({**data, "hash": "XYZ"})
