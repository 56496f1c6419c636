"""The one field reader of every HTTP edge: paths in problems, first-problem and whole-payload modes, times, ids."""

from __future__ import annotations

from enum import Enum
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from statusd.core.errors import NotFound, ValidationError
from statusd.web.fields import Fields, Problems, parse_time, path_id


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


def first_problem(data: dict[str, Any], read: str, *args: Any, path: str = "", **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        getattr(Fields(data, path), read)(*args, **kwargs)
    return caught.value.field, caught.value.message


@pytest.mark.parametrize(("data", "read", "args", "kwargs", "expected"), [
    pytest.param({}, "text", ("t",), {"required": True}, ("t", "required"), id="text-required"),
    pytest.param({"t": 3}, "text", ("t",), {}, ("t", "must be a string"), id="text-not-a-string"),
    pytest.param({"t": "  "}, "text", ("t",), {"required": True}, ("t", "must not be empty"), id="text-blank"),
    pytest.param({"t": "abcd"}, "text", ("t",), {"max_len": 3}, ("t", "must be at most 3 characters"),
                 id="text-too-long"),
    pytest.param({"f": "yes"}, "flag", ("f", True), {}, ("f", "must be true or false"), id="flag"),
    pytest.param({"c": "green"}, "choice", ("c", Colour), {}, ("c", "must be one of: red, blue"), id="choice"),
    pytest.param({}, "one_of", ("s", ("a", "b")), {"required": True}, ("s", "required: one of a, b"),
                 id="one-of-required"),
    pytest.param({"s": "c"}, "one_of", ("s", ("a", "b")), {}, ("s", "must be one of a, b"), id="one-of"),
    pytest.param({"n": ["a", 1]}, "names", ("n",), {}, ("n", "must be a list of strings"), id="names"),
    pytest.param({"n": ["a", "b"]}, "names", ("n",), {"max_items": 1}, ("n", "must have at most 1 items"),
                 id="names-too-many"),
    pytest.param({"i": True}, "integer", ("i",), {}, ("i", "must be an integer"), id="integer-not-bool"),
    pytest.param({"i": None}, "integer", ("i",), {}, ("i", "must be an integer"), id="integer-null"),
    pytest.param({"o": []}, "obj", ("o",), {}, ("o", "must be a JSON object"), id="obj"),
    pytest.param({"l": {"team": 1}}, "labels", ("l",), {}, ("l.team", "must be a string"), id="labels"),
    pytest.param({"ts": "2026-03-02 09:00"}, "timestamp", ("ts",), {},
                 ("ts", "must be an RFC 3339 timestamp like 2026-03-02T09:00:00Z"), id="timestamp-shape"),
])
def test_each_reader_names_the_field_of_its_problem(data: dict[str, Any], read: str, args: tuple[Any, ...],
                                                    kwargs: dict[str, Any], expected: tuple[str, str]) -> None:
    assert first_problem(data, read, *args, **kwargs) == expected


def test_a_problem_carries_the_objects_path() -> None:
    assert first_problem({"text": 1}, "text", "text", path="reports[3]") == ("reports[3].text", "must be a string")


def test_unknown_fields_are_refused_only_when_the_allowed_ones_are_given() -> None:
    with pytest.raises(ValidationError) as caught:
        Fields({"title": "x", "colour": "red"}, "reports[0]", allowed={"title"})
    assert (caught.value.field, caught.value.message) == ("reports[0].colour", "unknown field (allowed: title)")
    assert Fields({"title": "x", "colour": "red"}).text("title") == "x"


def test_text_is_trimmed_and_string_is_kept_as_sent() -> None:
    fields = Fields({"t": "  padded  "})
    assert fields.text("t") == "padded"
    assert fields.string("t") == "  padded  "


def test_collecting_mode_records_every_problem_and_reads_on() -> None:
    problems = Problems()
    fields = Fields({"version": 4, "status": "maybe", "alerts": [{"labels": {"a": 1, "b": 2}}]}, problems=problems)
    assert fields.string("version") is None
    assert fields.one_of("status", ("firing", "resolved")) is None
    alert = Fields(fields.data["alerts"][0], "alerts[0]", problems=problems)
    assert alert.labels("labels") == {}
    assert alert.one_of("status", ("firing", "resolved"), required=True) is None
    assert problems.items == [
        ("version", "must be a string"),
        ("status", "must be one of firing, resolved"),
        ("alerts[0].labels.a", "must be a string"),
        ("alerts[0].labels.b", "must be a string"),
        ("alerts[0].status", "required: one of firing, resolved"),
    ]


def test_collecting_mode_gives_defaults_for_bad_values() -> None:
    problems = Problems()
    fields = Fields({"f": "x", "n": "x", "t": 1}, problems=problems)
    assert fields.flag("f", True) is True
    assert fields.names("n") == []
    assert fields.text("t", default="d") == "d"
    assert [path for path, _ in problems.items] == ["f", "n", "t"]


@pytest.mark.parametrize(("value", "message"), [
    pytest.param(5, "expected an ISO-8601 time with offset", id="not-a-string"),
    pytest.param("yesterday", "expected an ISO-8601 time with offset, e.g. 2026-03-02T09:00:00Z", id="not-a-time"),
    pytest.param("2026-03-02T09:00:00", "needs a UTC offset, e.g. Z or +03:00", id="no-offset"),
])
def test_parse_time_refuses(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_time(value, "received_at")
    assert (caught.value.field, caught.value.message) == ("received_at", message)


def test_parse_time_takes_z_and_offsets() -> None:
    assert parse_time("2026-03-02T09:00:00Z", "at") == parse_time("2026-03-02T12:00:00+03:00", "at")


@pytest.mark.parametrize(("raw", "outcome"), [
    pytest.param("42", 42, id="id"),
    pytest.param("+1", ValidationError, id="sign"),
    pytest.param("1_0", ValidationError, id="underscore"),
    pytest.param("١٢", ValidationError, id="other-digits"),
    pytest.param("0", NotFound, id="zero"),
    pytest.param("9" * 40, NotFound, id="beyond-64-bits"),
])
def test_path_id(raw: str, outcome: int | type[Exception]) -> None:
    request = make_mocked_request("GET", f"/api/v1/incidents/{raw}", match_info={"id": raw})
    if isinstance(outcome, int):
        assert path_id(request) == outcome
    else:
        with pytest.raises(outcome):
            path_id(request)
