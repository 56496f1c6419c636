"""The dialect layer on its own: placeholder numbering and the value codecs both stores rely on."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from statusd.store.dialect import POSTGRES, SQLITE, Dialect, numbered

IST = timezone(timedelta(hours=5, minutes=30))


@pytest.mark.parametrize(("sql", "expected"), [
    pytest.param("SELECT 1", "SELECT 1", id="none"),
    pytest.param("a = ? AND b IN (?, ?) LIMIT ?", "a = $1 AND b IN ($2, $3) LIMIT $4", id="in-order"),
    pytest.param("x = '?' AND y = ?", "x = '?' AND y = $1", id="quoted-literal-kept"),
    pytest.param("x = 'it''s ?' AND y = ?", "x = 'it''s ?' AND y = $1", id="escaped-quote-in-literal"),
    pytest.param('SELECT "odd?name" FROM t WHERE id = ?', 'SELECT "odd?name" FROM t WHERE id = $1', id="quoted-identifier"),
    pytest.param("components ?| ?::text[] OR data ?& ?::text[]", "components ?| $1::text[] OR data ?& $2::text[]",
                 id="jsonb-operators-kept"),
])
def test_numbered_placeholders(sql: str, expected: str) -> None:
    assert numbered(sql) == expected


@pytest.mark.parametrize("dialect", [SQLITE, POSTGRES], ids=["sqlite", "postgres"])
def test_times_are_stored_as_utc_and_naive_ones_refused(dialect: Dialect) -> None:
    at = datetime(2026, 3, 1, 14, 30, 15, 123456, tzinfo=IST)
    stored = dialect.time(at)
    if dialect is SQLITE:
        assert stored == "2026-03-01T09:00:15.123456+00:00"  # sorts as text
    back = dialect.read_instant(stored)
    assert back == at and back.utcoffset() == timedelta(0)
    assert dialect.time(None) is None and dialect.read_time(None) is None
    with pytest.raises(ValueError, match="naive"):
        dialect.time(datetime(2026, 3, 1))


def test_sqlite_codecs_round_trip() -> None:
    assert SQLITE.read_json(SQLITE.json({"b": 1, "a": ["é"]})) == {"a": ["é"], "b": 1}
    assert SQLITE.json({"b": 1, "a": 2}) == '{"a":2,"b":1}' and SQLITE.json(None) is None
    assert SQLITE.read_day(SQLITE.day(date(2026, 3, 1))) == date(2026, 3, 1)
    assert SQLITE.flag(True) == 1 and SQLITE.flag(False) == 0


def test_list_matches_never_match_nothing_and_always_exclude_nothing() -> None:
    assert SQLITE.any_of("id", [], "text") == ("id IN ()", [])
    assert SQLITE.none_of("id", ["a", "b"], "text") == ("id NOT IN (?,?)", ["a", "b"])
    assert POSTGRES.any_of("id", (1, 2), "bigint") == ("id = ANY(?::bigint[])", [[1, 2]])
    assert POSTGRES.none_of("id", [], "text") == ("NOT (id = ANY(?::text[]))", [[]])
