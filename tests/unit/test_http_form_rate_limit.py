"""The public form's rate limit per network in bounded memory: a flood of new networks evicts the buckets that
matter least, one at a time, and never resets an abuser's (issue 18, Security 4). Fake monotonic clock."""

from __future__ import annotations

from typing import Any

from statusd.reports.form import ReportForm
from statusd.reports.rate_limit import TokenBuckets
from statusd.reports.validation import IntakeLimits


class Seconds:
    """A monotonic clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _form(clock: Seconds) -> ReportForm:
    nothing: Any = None  # the rate limit needs neither validation nor the pipeline
    return ReportForm(nothing, nothing, nothing, components={}, limits=IntakeLimits(form_rate_per_min=5),
                      monotonic=clock)


def test_a_flood_of_distinct_networks_past_the_cap_does_not_reset_an_abusers_limit() -> None:
    clock = Seconds()
    form = _form(clock)
    assert [form._allow("198.51.100.0/24") for _ in range(6)] == [True] * 5 + [False]
    for i in range(100_050):  # the flood, each post from a network of its own
        clock.now += 0.0001  # 10 s in all: the abuser's bucket is far from full again
        form._allow(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert form._allow("198.51.100.0/24") is False
    assert len(form._buckets) <= 100_000


def test_over_the_cap_the_bucket_full_again_soonest_goes_first_one_at_a_time() -> None:
    buckets = TokenBuckets(5, max_buckets=3)
    assert [buckets.take("abuser", 0.0) for _ in range(6)] == [True] * 5 + [False]  # empty: full again at 60 s
    buckets.take("a", 1.0)  # one token taken: full again at 13 s
    buckets.take("b", 2.0)  # at 14 s
    buckets.take("c", 3.0)  # over the cap: "a", the one full again soonest, goes; the abuser stays
    assert len(buckets) == 3
    assert buckets.take("abuser", 4.0) is False
    assert [buckets.take("a", 4.0) for _ in range(5)] == [True] * 5  # "a" starts afresh, as a full bucket would


def test_a_bucket_that_refilled_is_dropped_before_one_still_limiting() -> None:
    buckets = TokenBuckets(5, max_buckets=2)
    buckets.take("long-ago", 0.0)  # full again at 12 s
    assert [buckets.take("abuser", 100.0) for _ in range(6)][-1] is False
    buckets.take("newcomer", 101.0)
    assert buckets.take("abuser", 102.0) is False


def test_stale_entries_of_a_busy_key_do_not_grow_without_bound() -> None:
    buckets = TokenBuckets(5, max_buckets=10)
    for i in range(50_000):
        buckets.take("busy", i * 0.001)
    assert len(buckets._full_at) <= 2 * len(buckets) + 1024
