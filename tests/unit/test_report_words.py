"""The report's words: one table, the same keys in Dutch and English, Dutch dates and numbers."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest

from coordinator.report import DEFAULT_LANGUAGE, LANGUAGES, WORDS, Notice, Words


def fields(template: str) -> set[str]:
    """The names of a template's fields ({count}, {growth:.0%} -> count, growth)."""
    return {name for _text, name, _spec, _conv in string.Formatter().parse(template) if name}


class TestTable:
    def test_dutch_is_the_default_and_both_languages_are_there(self) -> None:
        """Dutch first and the default; English beside it."""
        assert DEFAULT_LANGUAGE == "nl"
        assert LANGUAGES == ("nl", "en")

    def test_both_languages_have_the_same_keys(self) -> None:
        """Every key of one language is in the other: no string is said in one only."""
        nl, en = set(WORDS["nl"]), set(WORDS["en"])
        assert nl - en == set()
        assert en - nl == set()

    def test_both_languages_fill_in_the_same_fields(self) -> None:
        """A template names the same fields in both languages, so either can be filled in."""
        differ = {
            key: (fields(WORDS["nl"][key]), fields(WORDS["en"][key]))
            for key in WORDS["nl"]
            if fields(WORDS["nl"][key]) != fields(WORDS["en"][key])
        }
        assert differ == {}

    def test_the_dutch_table_is_translated(self) -> None:
        """Most Dutch strings differ from the English ones (only names and codes agree)."""
        same = [k for k in WORDS["nl"] if WORDS["nl"][k] == WORDS["en"][k]]
        assert len(same) < len(WORDS["nl"]) // 10, same

    def test_an_unknown_language_is_refused_by_name(self) -> None:
        """Words('de') raises ValueError naming the languages there are."""
        with pytest.raises(ValueError, match="'de' is not one of nl, en"):
            Words("de")


class TestDutchWriting:
    def test_dates_are_written_the_dutch_way(self) -> None:
        """1 december 2026 in Dutch (lower-case month, no leading zero); ISO in English."""
        day = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
        assert Words("nl").date(day) == "1 december 2026"
        assert Words("en").date(day) == "2026-12-01"
        assert Words("nl").date(datetime(2027, 3, 15, tzinfo=UTC)) == "15 maart 2027"
        assert Words("nl").moment(day) == "1 december 2026 09:30:00 UTC"

    def test_a_date_is_the_day_in_utc(self) -> None:
        """A moment just after midnight in UTC+2 is still the previous day in UTC."""
        plus_two = timezone(timedelta(hours=2))
        assert Words("nl").date(datetime(2026, 12, 2, 1, 0, tzinfo=plus_two)) == "1 december 2026"

    def test_decimals_take_a_comma_in_dutch(self) -> None:
        """Percentages and decimals: a comma in Dutch, a point in English."""
        assert Words("nl").percent(0.125, signed=True) == "+12,5%"
        assert Words("en").percent(0.125, signed=True) == "+12.5%"
        assert Words("nl").decimal(1.25, 3) == "1,250"
        assert Words("nl").number(12345) == "12\u202f345"

    def test_a_notice_is_said_in_each_language(self) -> None:
        """A gathered warning reads in the page's language, its datetime as that language's
        date, prefixed with its partner."""
        due = datetime(2026, 12, 1, tzinfo=UTC)
        notice = Notice("deletion_overdue", {"due": due}, "woonbron")
        assert Words("en").notice(notice) == (
            "woonbron: results were due for deletion by 2026-12-01 and no deletion receipt has "
            "arrived"
        )
        dutch = Words("nl").notice(notice)
        assert dutch.startswith("woonbron: resultaten hadden uiterlijk 1 december 2026 ")
        assert not re.search(r"\d{4}-\d{2}-\d{2}", dutch)

    def test_every_notice_key_fills_in_from_its_fields(self) -> None:
        """Every notice template formats in both languages once its fields are given."""
        for key in (k for k in WORDS["en"] if k.startswith("notice.")):
            params = {name: 1 for name in fields(WORDS["en"][key])}
            for lang in LANGUAGES:
                assert Words(lang).notice(Notice(key.removeprefix("notice."), params))
