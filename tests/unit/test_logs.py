"""Logging: JSON or console by terminal, and no identifier ever reaches a log line."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from kruispunt.identifiers import canonical_address, canonical_bsn, render
from kruispunt.logs import configure_logging, refuse_identifiers
from kruispunt.redact import REDACTED, looks_like_identifier
from tests.support.synthetic import make_network


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def capture(**kw: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(json=True, stream=stream, **kw)
    return stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def scrub(**event: Any) -> dict[str, Any]:
    return dict(refuse_identifiers(None, "info", dict(event)))


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class TestConfigure:
    def test_json_lines_with_level_and_time(self) -> None:
        """Off a terminal each event is one JSON object with event, level and timestamp."""
        stream = capture()
        structlog.get_logger().info("phase done", phase="blind", records=1200)
        (line,) = lines(stream)
        assert line["event"] == "phase done"
        assert line["level"] == "info"
        assert line["phase"] == "blind"
        assert line["records"] == 1200
        assert line["timestamp"].endswith("Z")
        assert "redacted" not in line

    def test_bound_context_is_included(self) -> None:
        """Context bound with contextvars (round_id, partner) appears on every line."""
        stream = capture()
        round_id = str(uuid.UUID(int=0x12345678_1234_1234_1234_123456789012))
        structlog.contextvars.bind_contextvars(round_id=round_id, partner="gemeente")
        structlog.get_logger().info("round started")
        (line,) = lines(stream)
        assert line["round_id"] == round_id  # a UUID with an 8-digit group is not a BSN
        assert line["partner"] == "gemeente"

    def test_level_filters(self) -> None:
        """Below the configured level nothing is written."""
        stream = capture(level="warning")
        log = structlog.get_logger()
        log.info("quiet")
        log.warning("loud")
        assert [line["event"] for line in lines(stream)] == ["loud"]

    def test_unknown_level(self) -> None:
        """An unknown level name is a ValueError."""
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging(level="chatty", stream=io.StringIO())

    def test_terminal_gets_console_rendering(self) -> None:
        """On a terminal (json=None) the console renderer is used, still redacting."""
        tty = _Tty()
        configure_logging(stream=tty)
        structlog.get_logger().info("hello", postcode="5211 AB")
        out = tty.getvalue()
        assert not out.startswith("{")
        assert "hello" in out
        assert REDACTED in out
        assert "5211" not in out

    def test_non_terminal_gets_json_by_default(self) -> None:
        """json=None on a non-terminal stream means JSON lines."""
        stream = io.StringIO()
        configure_logging(stream=stream)
        structlog.get_logger().info("x")
        assert json.loads(stream.getvalue())["event"] == "x"


class TestRefuseIdentifiers:
    @pytest.mark.parametrize(
        "value",
        [
            "123456782",
            "bsn 123456782 invalid",
            "bsn=123456782",
            "72436281",
            "1234.56.782",
            "123 456 782",
            "5211AB",
            "5211 ab",
            "at 5211AB12",
            "bsn:072436281",
            "address:5211AB:12:A:",
            "line 7: 123456782",
        ],
    )
    def test_identifier_strings_are_redacted(self, value: str) -> None:
        """A string holding a BSN, postcode or canonical form is replaced whole."""
        out = scrub(event="x", field=value)
        assert out["field"] == REDACTED
        assert out["redacted"] is True

    def test_event_text_is_redacted(self) -> None:
        """The event text itself is checked."""
        out = scrub(event="could not match 123456782")
        assert out == {"event": REDACTED, "redacted": True}

    @pytest.mark.parametrize(
        "value",
        [
            canonical_bsn("123456782"),
            canonical_address("5211AB", "12"),
            bytearray(b"xx" + canonical_bsn("123456782")),
            canonical_bsn("123456782").hex(),
            canonical_address("5211AB", "12").hex(),
        ],
    )
    def test_canonical_bytes_and_their_hex_are_redacted(self, value: object) -> None:
        """Canonical identifier bytes, and hex of them, never reach a log."""
        assert scrub(event="x", v=value)["v"] == REDACTED

    def test_nested_values_are_redacted(self) -> None:
        """Strings inside lists, tuples and dicts are checked and replaced."""
        out = scrub(event="x", rows=[1, "ok", ("5211AB", 2)], meta={"a": {"b": "123456782"}})
        assert out["rows"] == [1, "ok", [REDACTED, 2]]
        assert out["meta"] == {"a": {"b": REDACTED}}
        assert out["redacted"] is True

    def test_int_bsn_is_redacted(self) -> None:
        """An integer in the BSN range that passes the elfproef is treated as a BSN."""
        out = scrub(event="x", n=123456782, small=72436281, plain=123456789, count=500)
        assert out["n"] == REDACTED
        assert out["small"] == REDACTED
        assert out["plain"] == 123456789
        assert out["count"] == 500

    def test_objects_are_judged_by_their_rendering(self) -> None:
        """An object whose repr shows an identifier is redacted too."""

        class Row:
            def __repr__(self) -> str:
                return "Row(bsn='123456782')"

        assert scrub(event="x", row=Row())["row"] == REDACTED

    @pytest.mark.parametrize(
        "value",
        [
            "phase done",
            "3fa9c0123456789abcdef0123456789abcdef0123456789abcdef0123456789a",
            "a1b2c3d4e5f60718",
            str(uuid.UUID(int=0x12345678_1234_1234_1234_123456789012)),
            "2026-11-28T16:50:10.123456Z",
            "1234567",
            "12345678901",
            "input unusable: /srv/in.csv, line 12: bsn: elfproef fails",
            "set of 1200 records",
        ],
    )
    def test_ordinary_values_pass(self, value: str) -> None:
        """Digests, UUIDs, timestamps, short and long numbers and reasons pass untouched."""
        out = scrub(event="x", field=value, size=1_000_000, ratio=0.5, ok=True, none=None)
        assert out["field"] == value
        assert "redacted" not in out
        assert not looks_like_identifier(value)

    def test_exception_text_is_checked(self) -> None:
        """A traceback whose message holds an identifier is redacted as well."""
        stream = capture()
        try:
            raise KeyError("123456782")
        except KeyError:
            structlog.get_logger().exception("lookup failed")
        (line,) = lines(stream)
        assert line["exception"] == REDACTED
        assert line["redacted"] is True
        assert "123456782" not in stream.getvalue()

    @settings(deadline=None)  # timing varies on a loaded CI machine
    @given(
        st.text(alphabet=st.characters(codec="ascii"), max_size=10),
        st.sampled_from([" ", ":", "=", "(", "'", "\t", "_", "/"]),
        st.integers(min_value=0, max_value=99_999_999),
    )
    def test_any_embedded_bsn_is_caught(self, prefix: str, sep: str, head: int) -> None:
        """A BSN anywhere in a text, set off by a non-alphanumeric, is redacted."""
        digits = f"{head:08d}"
        text = prefix + sep + digits + "0" + sep + "end"
        assert looks_like_identifier(text)


class TestNoIdentifierReachesALog:
    @pytest.mark.parametrize("kind", ["bsn", "address"])
    def test_synthetic_identifiers_never_appear(self, kind: str) -> None:
        """Logging every identifier of a synthetic network in every way prints none of them."""
        net = make_network(["a", "b"], 150, {2: 20}, seed=9, kind=kind)  # type: ignore[arg-type]
        stream = capture()
        log = structlog.get_logger()
        for p in net.partners:
            for row, cid in zip(net.rows[p], net.ids[p], strict=True):
                human = render(cid)
                raw = " ".join(v for v in row.values() if v)
                log.info(f"record {human}", canonical=cid, raw=raw, fields=dict(row))
                log.warning("row", text=cid.decode(), hexed=cid.hex(), parts=list(row.values()))
        out = stream.getvalue()
        # Two lines per row, every one of them redacted.
        assert out.count('"redacted": true') == 2 * sum(len(r) for r in net.rows.values())
        for p in net.partners:
            for cid in net.ids[p]:
                assert cid.decode() not in out
                assert render(cid) not in out
                if kind == "bsn":
                    assert cid[4:].decode() not in out
                else:
                    postcode = cid.decode().split(":")[1]
                    assert postcode not in out
                    assert f"{postcode[:4]} {postcode[4:]}" not in out
