"""One identifier detector: what a log line would redact, an audit row refuses."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from kruispunt import signing
from kruispunt.audit import GENESIS_HASH, check_no_identifiers, safe_reason, seal
from kruispunt.doctor import WARN, Check
from kruispunt.identifiers import canonical_address, elfproef
from kruispunt.logs import configure_logging, refuse_identifiers
from kruispunt.manifest import new_round_id
from kruispunt.redact import (
    REDACTED,
    identifier_reason,
    in_bsn_range,
    looks_like_identifier,
    may_be_bsn_number,
    scrub,
)

# Synthetic, elfproef-valid BSNs: 111222333 and the classic test number 123456782.
BSN = "111222333"

#: Strings the log redactor caught and the old audit guard let through, and their kin.
IDENTIFIER_TEXTS = [
    "1234.56.782",  # a BSN grouped 4-2-3 with dots
    "1234 56 782",
    "1234-56-782",
    "123 456 782",
    "123-456-782",
    "12345678",  # a BSN that lost its leading zero
    "bsn 12345678 unknown",
    "5211ab",  # a postcode in lower case
    "5211 AB",
    "5211 ab",
    "3000 MS",  # a postcode whose letters happen to spell a unit, in capitals
    BSN,  # a valid 9-digit BSN
    "123456782",
    f"user{BSN}",  # a 9-digit run touching letters
    f"line 7: {BSN}",
    "address:5211AB:12:A:",
    "bsn:012345678",
    canonical_address("5211AB", "12").hex(),  # digest-length hex of a canonical form
]

#: Ids, digests and measurements that must reach logs and audit rows untouched.
ORDINARY_TEXTS = [
    "r20250301T093000-1a2b3c4d",  # a round id
    "r20250301T093000-12345678",  # a round id whose random suffix is all digits
    "round r20250301T093000-12345678 aborted by the operator",
    "/srv/node/results/r20250301T093000-12345678.csv",
    hashlib.sha256(b"x").hexdigest(),
    "1234567890" * 6 + "abcd",  # a 64-digit digest that is mostly digits
    f"manifest {'1234567890' * 6 + 'abcd'} does not match",
    "a1b2c3d4e5f60718",  # a key id
    "1234567812345678",  # a 16-digit key id that is all digits
    str(uuid.UUID(int=0x12345678_1234_1234_1234_123456789012)),
    "2026-11-28T16:50:10.123Z",
    "2026-12-01 15:40 UTC",
    "deadline exceeded after 3000 ms",
    "ipv4:192.168.100.200:50051",
    "1234567",
    "12345678901",
    "set of 1200 records",
    "AVG art. 6(1)(e); Wgs art. 3a",
]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def audit_refuses(text: str) -> bool:
    """Whether the audit guard refuses `text` as a detail value, a detail key or a text field."""
    outcomes = []
    for details, fields in (({"reason": text}, {}), ({text: 1}, {}), ({}, {"basis": text})):
        try:
            check_no_identifiers(details, **fields)
        except ValueError:
            outcomes.append(True)
        else:
            outcomes.append(False)
    assert len(set(outcomes)) == 1, "the guard must judge a value the same wherever it stands"
    return outcomes[0]


def log_redacts(text: str) -> bool:
    """Whether a log line carrying `text` has it replaced by REDACTED."""
    out = dict(refuse_identifiers(None, "info", {"event": "x", "field": text}))
    assert (out["field"] == REDACTED) == out.get("redacted", False)
    return out["field"] == REDACTED


class TestOneDetector:
    @pytest.mark.parametrize("text", IDENTIFIER_TEXTS)
    def test_identifier_text_is_refused_by_the_audit_guard(self, text: str) -> None:
        """Each of these is refused in details, keys and text fields, naming only the field."""
        with pytest.raises(ValueError, match="refused") as caught:
            check_no_identifiers({"reason": text})
        assert text not in str(caught.value)
        assert audit_refuses(text)

    @pytest.mark.parametrize("text", IDENTIFIER_TEXTS)
    def test_identifier_text_is_redacted_in_logs(self, text: str) -> None:
        """Each of these is replaced whole in a log line, which is marked redacted."""
        stream = io.StringIO()
        configure_logging(json=True, stream=stream)
        structlog.get_logger().info("lookup", value=text)
        (line,) = [json.loads(raw) for raw in stream.getvalue().splitlines()]
        assert line["value"] == REDACTED
        assert line["redacted"] is True
        assert text not in stream.getvalue()

    @pytest.mark.parametrize("text", ORDINARY_TEXTS)
    def test_ids_digests_and_measurements_pass_both(self, text: str) -> None:
        """Round ids, hex digests, UUIDs, timestamps and addresses pass the guard and the logs."""
        check_no_identifiers({"reason": text, "path": text}, basis=text, round_id=text)
        assert not log_redacts(text)
        assert identifier_reason(text) is None

    @pytest.mark.parametrize("text", IDENTIFIER_TEXTS + ORDINARY_TEXTS)
    def test_guard_and_redactor_agree(self, text: str) -> None:
        """The audit guard refuses exactly what the log redactor redacts."""
        assert audit_refuses(text) == log_redacts(text) == looks_like_identifier(text)

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(st.text(alphabet="0123456789abcdefABrT .-:_/ms", max_size=40))
    def test_guard_and_redactor_agree_on_any_text(self, text: str) -> None:
        """For any text, the audit guard and the log redactor reach the same verdict."""
        assert audit_refuses(text) == log_redacts(text)

    def test_round_ids_always_pass(self) -> None:
        """A freshly minted round id passes the guard whatever its random suffix holds."""
        moment = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
        for _ in range(500):
            round_id = new_round_id(moment)
            check_no_identifiers({"file": f"results/{round_id}.csv"}, round_id=round_id)
            assert not log_redacts(round_id)

    def test_random_digests_always_pass(self) -> None:
        """SHA-256 digests pass however many digits they hold (9-digit runs are common in them)."""
        for i in range(2000):
            digest = hashlib.sha256(i.to_bytes(4, "big")).hexdigest()
            check_no_identifiers({"manifest_sha256": digest, "note": f"digest {digest} ok"})
            assert not log_redacts(digest)

    def test_seal_refuses_the_strings_the_old_guard_let_through(
        self, key: Ed25519PrivateKey
    ) -> None:
        """seal() refuses an 8-digit run, a grouped BSN and a lower-case postcode in details."""
        for text in ("12345678", "1234.56.782", "5211ab"):
            with pytest.raises(ValueError, match="refused") as caught:
                seal(
                    seq=1, prev_hash=GENESIS_HASH, time=datetime(2025, 3, 1, tzinfo=UTC),
                    event="round.failed", actor="coordinator", on_behalf_of="n",
                    access_point="coordinator", action="E", basis="", round_id="",
                    details={"reason": text}, signing_key=key,
                )  # fmt: skip
            assert text not in str(caught.value)

    @pytest.mark.parametrize("text", ["12345678", "1234.56.782", "5211ab", "5211 AB", BSN])
    def test_safe_reason_withholds_identifier_text(self, text: str) -> None:
        """A peer's reason holding any of these is withheld from the audit row."""
        assert text not in safe_reason(f"partner said: {text} not found")

    def test_doctor_details_use_the_same_detector(self) -> None:
        """A doctor's check detail holding a grouped BSN or a postcode is redacted."""
        for text in ("1234.56.782", "5211ab", "12345678"):
            assert text not in Check("input", WARN, f"row 3: {text}").detail
        assert Check("cert", WARN, "expires in 9 days, on 2026-12-10 15:40 UTC").detail.startswith(
            "expires in 9 days"
        )


class TestNumbers:
    def test_audit_refuses_every_8_or_9_digit_integer(self) -> None:
        """The audit guard refuses integers of 8 or 9 digits, elfproef or not."""
        for number in (11222333, 123456789, -123456782):
            assert in_bsn_range(number)
        for number in (9_999_999, 1_000_000_000):
            assert not in_bsn_range(number)
        for number in (11222333, 123456789, 123456782):
            with pytest.raises(ValueError, match="BSN-like"):
                check_no_identifiers({"count": number})

    def test_logs_redact_integers_that_may_be_a_bsn(self) -> None:
        """Logs redact 8/9-digit integers that pass the elfproef and keep other sizes."""
        for digits in (BSN, "123456782"):
            assert elfproef(digits)
            assert may_be_bsn_number(int(digits))
        assert not may_be_bsn_number(123456789)
        out, hit = scrub({"n": 123456782, "plain": 123456789, "bytes": 1_500_000_000})
        assert hit
        assert out == {"n": REDACTED, "plain": 123456789, "bytes": 1_500_000_000}

    def test_logs_redact_a_bsn_read_as_a_float(self) -> None:
        """A BSN column parsed as floats (123456782.0) is redacted like the integer."""
        out, hit = scrub({"bsn": 123456782.0, "ratio": 0.5, "seconds": 12.25})
        assert hit
        assert out == {"bsn": REDACTED, "ratio": 0.5, "seconds": 12.25}
        with pytest.raises(ValueError, match="BSN-like"):
            check_no_identifiers({"bsn": 123456782.0})

    def test_logs_redact_a_mapping_keyed_by_identifiers(self) -> None:
        """A dict whose keys are BSNs is replaced whole: its keys would be printed."""
        out, hit = scrub({"by_bsn": {BSN: 1}, "by_partner": {"gemeente": 2}})
        assert hit
        assert out == {"by_bsn": REDACTED, "by_partner": {"gemeente": 2}}
        with pytest.raises(ValueError, match="key"):
            check_no_identifiers({"by_bsn": {BSN: 1}})


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return signing.generate_signing_key()
