"""Customer report model and ru/en text normalisation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from statusd.core.errors import ValidationError
from statusd.reports.text import Report, normalize, stem, words

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("Не работает ОПЛАТА картой!!!", "не работает оплата картой", id="ru-casefold-punctuation"),
    pytest.param("Ёлки, всё зависло", "елки все зависло", id="ru-yo-to-e"),
    pytest.param("Card payments FAILING since 10:30", "card payments failing since", id="en-digits-dropped"),
    pytest.param("see https://pay.example.com/x?id=42 and www.example.org", "see and", id="urls"),
    pytest.param("write to bob.smith+x@mail.example.com please", "write to please", id="email"),
    pytest.param("заказ №48213 не пришел", "заказ не пришел", id="ru-numero"),
    pytest.param("ticket #5521: login broken", "ticket login broken", id="hash-ticket"),
    pytest.param("INC-4411 and ORD12345X refund", "and refund", id="ticket-ids"),
    pytest.param("I'm   unable\tto\nlog in", "unable to log in", id="whitespace-and-single-letters"),
    pytest.param("приложение 2.3.1 вылетает 😡", "приложение вылетает", id="ru-version-emoji"),
    pytest.param("", "", id="empty"),
    pytest.param("12345 !!! ???", "", id="nothing-left"),
])
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(("word", "expected"), [
    pytest.param("оплатить", "опла", id="ru-verb"),
    pytest.param("оплата", "опла", id="ru-noun"),
    pytest.param("картой", "карт", id="ru-instrumental"),
    pytest.param("payments", "payments", id="en-kept-whole"),
])
def test_stem_cuts_cyrillic_words_only(word: str, expected: str) -> None:
    assert stem(word) == expected


def test_words_drop_stopwords_and_stem() -> None:
    assert words("Я не могу оплатить картой", drop_stopwords=True, stem_prefix=4) == ["могу", "опла", "карт"]
    assert words("I can not pay with my card", drop_stopwords=True) == ["pay", "card"]


def test_report_requires_an_aware_time() -> None:
    with pytest.raises(ValidationError) as err:
        Report("r1", "c1", "text", datetime(2026, 1, 5, 9, 0))
    assert err.value.field == "received_at"


@pytest.mark.parametrize("field", ["id", "client_id"])
def test_report_requires_ids(field: str) -> None:
    values = {"id": "r1", "client_id": "c1", "text": "x", "received_at": AT, field: ""}
    with pytest.raises(ValidationError) as err:
        Report(**values)
    assert err.value.field == field


def test_report_tags_are_frozen_copies() -> None:
    tags = {"component": "payments", "region": ""}
    report = Report("r1", "c1", "x", AT, tags=tags)
    tags["component"] = "login"
    assert dict(report.tags) == {"component": "payments"}  # empty values dropped, later edits ignored
    assert report.tag("component") == "payments" and report.tag("region") is None
    with pytest.raises(TypeError):
        report.tags["component"] = "x"  # type: ignore[index]
