"""Durations and times in notifications read as words in the page's time zone, never as raw numbers."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from statusd.notify.templates import Templates, duration, local_time

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("value", "unit", "words"), [
    pytest.param(0, "seconds", "0 seconds", id="zero"),
    pytest.param(1, "seconds", "1 second", id="one-second"),
    pytest.param(59, "seconds", "59 seconds", id="seconds"),
    pytest.param(60, "seconds", "1 minute", id="one-minute"),
    pytest.param(119, "seconds", "1 minute", id="seconds-dropped-past-a-minute"),
    pytest.param(1, "minutes", "1 minute", id="one-minute-in-minutes"),
    pytest.param(45, "minutes", "45 minutes", id="minutes"),
    pytest.param(60, "minutes", "1 hour", id="one-hour"),
    pytest.param(61, "minutes", "1 hour and 1 minute", id="hour-and-minute"),
    pytest.param(150, "minutes", "2 hours and 30 minutes", id="hours-and-minutes"),
    pytest.param(1441, "minutes", "1 day and 1 minute", id="day-and-minute"),
    pytest.param(3 * 86400 + 7200 + 60, "seconds", "3 days and 2 hours", id="two-largest-units"),
    pytest.param(1.5, "hours", "1 hour and 30 minutes", id="fractional-hours"),
    pytest.param("soon", "seconds", "soon", id="unreadable-unchanged"),
    pytest.param(-5, "seconds", "-5", id="negative-unchanged"),
    pytest.param(5, "fortnights", "5", id="unknown-unit-unchanged"),
])
def test_duration_in_words(value, unit, words) -> None:
    assert duration(value, unit) == words


@pytest.mark.parametrize(("value", "zone", "text"), [
    pytest.param("2026-12-08T03:05:51.548655+00:00", BERLIN, "Tue 8 Dec 2026, 04:05 CET", id="winter"),
    pytest.param("2026-07-08T03:05:51+00:00", BERLIN, "Wed 8 Jul 2026, 05:05 CEST", id="summer"),
    pytest.param("2026-07-08T03:05:51+00:00", ZoneInfo("America/Sao_Paulo"), "Wed 8 Jul 2026, 00:05 -03",
                 id="zone-without-abbreviation"),
    pytest.param("2026-12-08T03:05:51+00:00", ZoneInfo("Etc/UTC"), "Tue 8 Dec 2026, 03:05 UTC", id="utc"),
    pytest.param(datetime(2026, 12, 8, 3, 5, tzinfo=UTC), BERLIN, "Tue 8 Dec 2026, 04:05 CET", id="datetime"),
    pytest.param("2026-12-08T03:05:51", BERLIN, "Tue 8 Dec 2026, 04:05 CET", id="naive-is-utc"),
    pytest.param("not a time", BERLIN, "not a time", id="unreadable-unchanged"),
])
def test_local_time(value, zone, text) -> None:
    assert local_time(value, zone) == text


INCIDENT = {"id": 7, "title": "API errors", "impact": "critical", "status": "investigating", "components": ["API"],
            "opened_at": "2026-12-08T02:59:51.548655+00:00", "source": "probe", "url": "http://status.test/incidents/7"}
UPDATE = {"status": "investigating", "body": "Looking into it.", "author": "Ann",
          "at": "2026-12-08T03:00:51.548655+00:00"}
CONTEXTS = {
    "alert": {"incident": INCIDENT},
    "reminder": {"incident": INCIDENT, "recipient": {"name": "Ann"},
                 "reminder": {"minutes_since_update": 1, "last_update_at": "2026-12-08T03:00:51.548655+00:00"}},
    "update": {"incident": INCIDENT, "update": UPDATE, "page": {"title": "Example status"}},
    "report_ack": {"incident": INCIDENT, "update": UPDATE, "page": {"title": "Example status"}},
    "postmortem": {"incident": INCIDENT, "page": {"title": "Example status"},
                   "postmortem": {"body": "What happened.", "author": "Ann", "at": "2026-12-09T10:00:00+00:00"}},
    "shift": {"recipient": {"name": "Ann"}, "shift": {"schedule": "primary", "start": "2026-12-08T08:00:00+00:00",
                                                      "end": "2026-12-08T20:00:00+00:00"}},
}


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_builtin_templates_show_no_raw_timestamps(name) -> None:
    rendered = Templates(time_zone="Europe/Berlin").render(name, CONTEXTS[name])
    for part in (rendered.subject, rendered.text, rendered.html or ""):
        assert "+00:00" not in part and "T0" not in part, part
    assert "CET" in rendered.subject + rendered.text


def test_reminder_reads_as_words() -> None:
    rendered = Templates(time_zone="Europe/Berlin").render("reminder", CONTEXTS["reminder"])
    assert rendered.subject == "[REMINDER] #7 API errors: no public update for 1 minute"
    assert rendered.text.startswith("Ann, incident #7 has had no public update for 1 minute "
                                    "(the last was Tue 8 Dec 2026, 04:00 CET).")
