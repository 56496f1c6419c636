"""Surge test: distinct clients against a seasonal, over-dispersed baseline; signals and linking."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from statusd.reports.encoders import NgramEncoder
from statusd.core.model import ComponentStatus
from statusd.reports.text import Report
from statusd.reports.baseline import SeasonalProfile, nb_tail
from statusd.reports.detector import ReportDetector
from statusd.reports.outcome import ReportOutcome
from statusd.reports.settings import SurgeConfig
from statusd.reports.surge import SurgeTest

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday


class Stream:
    """Feeds reports to a detector with increasing ids; keeps every outcome."""

    def __init__(self, detector: ReportDetector | None = None) -> None:
        self.detector = detector or ReportDetector(encoder=NgramEncoder())
        self.n = 0
        self.outcomes: list[ReportOutcome] = []

    def report(self, at: datetime, client: str, text: str = "it does not work", **tags: str) -> ReportOutcome:
        self.n += 1
        outcome = self.detector.observe(Report(f"r{self.n}", client, text, at, tags=tags))
        self.outcomes.append(outcome)
        return outcome

    def signals(self) -> list:
        return [o.signal for o in self.outcomes if o.signal is not None]


def quiet_day(stream: Stream, day: int = 0) -> None:
    """One report an hour about something else, so the detector knows the stream's usual rate."""
    for h in range(24):
        stream.report(START + timedelta(days=day, hours=h), f"bg-{day}-{h}", "other", component="website")


def test_nb_tail_is_poisson_for_large_size_and_heavier_for_small() -> None:
    mean = 1.5
    poisson = 1 - sum(math.exp(-mean) * mean ** k / math.factorial(k) for k in range(6))
    assert nb_tail(6, mean, 1e9) == pytest.approx(poisson, rel=1e-4)
    assert nb_tail(6, mean, 2.0) > poisson  # over-dispersion: surprising counts are less surprising
    assert nb_tail(0, mean, 2.0) == 1.0 and nb_tail(1, 0.0, 2.0) == 0.0
    assert [nb_tail(n, mean, 2.0) for n in range(2, 8)] == sorted((nb_tail(n, mean, 2.0) for n in range(2, 8)),
                                                                   reverse=True)


def test_burst_of_distinct_clients_fires_one_signal() -> None:
    s = Stream()
    quiet_day(s)
    burst = START + timedelta(days=1, hours=10)
    for i in range(7):
        s.report(burst + timedelta(minutes=2 * i), f"client{i}", f"card payment failed #{i}", component="payments")
    fired = [o for o in s.outcomes if o.signal is not None]
    assert len(fired) == 1
    outcome, signal = fired[0], fired[0].signal
    assert outcome.opened and outcome.group_key == "component:payments"
    assert signal.source == "reports" and signal.dedup_key == "reports:component:payments"
    assert signal.components == ("payments",) and signal.firing
    assert signal.severity == ComponentStatus.DEGRADED_PERFORMANCE
    assert signal.at == burst + timedelta(minutes=8)  # the 5th distinct client
    ev = signal.evidence
    assert ev["distinct_clients"] == 5 and ev["counts"]["reports"] == 5 and ev["expected"] < 0.5
    assert ev["report_ids"] == ["r25", "r26", "r27", "r28", "r29"] == list(outcome.link_report_ids)
    assert 1 <= len(ev["sample_texts"]) <= 5 and all(t.startswith("card payment failed") for t in ev["sample_texts"])
    assert "payments" in signal.summary
    # Later reports of the group join the incident one by one.
    later = s.outcomes[-1]
    assert later.signal is None and later.incident_key == "reports:component:payments"
    assert later.link_report_ids == ("r31",)
    assert s.detector.incident_reports("component:payments") == ("r25", "r26", "r27", "r28", "r29", "r30", "r31")


def test_one_client_repeating_is_not_a_surge() -> None:
    s = Stream()
    quiet_day(s)
    for i in range(30):
        s.report(START + timedelta(days=1, hours=10, minutes=i), "angry-client", "payment failed", component="payments")
    assert s.signals() == []
    assert s.outcomes[-1].incident_key is None


def test_normal_daily_peak_is_learnt_and_an_off_peak_burst_still_fires() -> None:
    s = Stream()
    for day in range(10):
        for h in range(0, 24, 2):  # off-peak trickle
            s.report(START + timedelta(days=day, hours=h, minutes=40), f"trickle-{day}-{h}", "slow", component="app")
        for i in range(8):  # every lunchtime, eight customers complain within 25 minutes
            s.report(START + timedelta(days=day, hours=12, minutes=3 * i), f"lunch-{day}-{i}", "slow", component="app")
    late_peaks = [sig for sig in s.signals() if sig.at >= START + timedelta(days=6)]
    assert late_peaks == []
    night = START + timedelta(days=10, hours=3)
    for i in range(8):
        s.report(night + timedelta(minutes=3 * i), f"night-{i}", "slow", component="app")
    assert [sig.at for sig in s.signals() if sig.at >= night] != []


def test_refractory_period_blocks_a_second_incident() -> None:
    config = SurgeConfig(refractory_s=6 * 3600, active_s=1800)
    s = Stream(ReportDetector(surge=config, encoder=NgramEncoder()))
    quiet_day(s)

    def burst(at: datetime, tag: str) -> None:
        for i in range(6):
            s.report(at + timedelta(minutes=2 * i), f"{tag}-{i}", "login broken", component="login")

    first = START + timedelta(days=1, hours=8)
    burst(first, "a")
    burst(first + timedelta(hours=3), "b")  # quiet for longer than active_s, but inside the refractory period
    assert len(s.signals()) == 1
    assert s.outcomes[-1].incident_key is None  # not linked: the first surge had ended
    burst(first + timedelta(hours=7), "c")
    assert len(s.signals()) == 2 and s.outcomes[-1].incident_key == "reports:component:login"


def test_a_growing_surge_raises_the_severity_once_per_step() -> None:
    s = Stream()
    quiet_day(s)
    at = START + timedelta(days=1, hours=9)
    for i in range(12):
        s.report(at + timedelta(minutes=i), f"c{i}", "payments down", component="payments")
    signals = s.signals()
    assert [sig.severity for sig in signals] == [ComponentStatus.DEGRADED_PERFORMANCE, ComponentStatus.PARTIAL_OUTAGE]
    assert [o.opened for o in s.outcomes if o.signal] == [True, False]
    assert signals[1].dedup_key == signals[0].dedup_key


def test_untagged_paraphrases_fire_a_text_group_signal() -> None:
    s = Stream()
    quiet_day(s)
    texts = ["Card payment failed at the shop", "My card payment failed again", "card payments keep failing",
             "payment with my card failed", "card payment failed", "my card payment failed today"]
    at = START + timedelta(days=1, hours=15)
    for i, text in enumerate(texts):
        s.report(at + timedelta(minutes=3 * i), f"c{i}", text)
    (signal,) = s.signals()
    assert signal.dedup_key == f"reports:{s.outcomes[24].group_key}" and signal.dedup_key.startswith("reports:text:")
    assert signal.components == ()
    assert "card payment" in signal.summary.lower()


def test_seasonal_profile_learns_the_busy_hour() -> None:
    profile = SeasonalProfile(prior_s=3600)
    for day in range(7):
        for h in range(24):
            at = START + timedelta(days=day, hours=h, minutes=30)
            profile.advance(at)
            for _ in range(10 if h == 14 else 1):
                profile.count(at)
    profile.advance(START + timedelta(days=7))
    busy, calm = profile.factor(START + timedelta(hours=14)), profile.factor(START + timedelta(hours=3))
    assert busy > 4 * calm
    assert profile.mean_factor(START + timedelta(hours=13, minutes=30), START + timedelta(hours=14, minutes=30)) \
        == pytest.approx((profile.factor(START + timedelta(hours=13)) + busy) / 2)


def test_the_last_hour_corrects_a_profile_that_has_not_seen_the_hour_yet() -> None:
    # Day one: a report every 10 minutes all morning, then one a minute from noon. The hour-of-day
    # shape has never seen a noon; the last hour's traffic says it is about six times the mean so far.
    profile = SeasonalProfile()
    at = START
    while at < START + timedelta(hours=13):
        profile.advance(at)
        profile.count(at)
        at += timedelta(minutes=10 if at.hour < 12 else 1)
    profile.advance(at)
    assert profile.shape(at) == pytest.approx(1.0, abs=0.2)
    assert profile.factor(at) > 3.0
    assert profile.mean_factor(at - timedelta(minutes=30), at) == pytest.approx(profile.factor(at), rel=0.05)
    assert profile.correction(START + timedelta(hours=3)) == pytest.approx(1.0, abs=0.2)  # the quiet morning
    # A stream of a few reports an hour stays on the shape: two arrivals are no evidence of a busy hour.
    quiet = SeasonalProfile()
    for minutes in (0, 120, 240, 241, 242):
        quiet.advance(START + timedelta(minutes=minutes))
        quiet.count(START + timedelta(minutes=minutes))
    assert quiet.correction(START + timedelta(minutes=242)) < 1.5
    # An hour long forgotten has no correction left.
    assert profile.correction(START - timedelta(days=3)) == 1.0


def burst_after_a_day(s: Stream, minutes: list[float]) -> list[ReportOutcome]:
    """A day and ten hours of other traffic (12 reports an hour) with the same complaint from one
    client an hour (at :40) among them, then one client per offset in minutes after 10:20 on day two."""
    for h in range(34):
        for m in range(0, 60, 5):
            s.report(START + timedelta(hours=h, minutes=m + 2), f"other-{h}-{m}", "where is my parcel", component="delivery")
        s.report(START + timedelta(hours=h, minutes=40), f"usual-{h}", "card payment failed")
    at = START + timedelta(days=1, hours=10, minutes=20)
    return [s.report(at + timedelta(minutes=m), f"client{i}", "card payment failed") for i, m in enumerate(minutes)]


def test_four_clients_within_minutes_are_a_surge_before_the_fifth() -> None:
    s = Stream()
    outcomes = burst_after_a_day(s, [0, 1, 2, 3])
    assert [o.signal is not None for o in outcomes] == [False, False, False, True]
    signal = outcomes[-1].signal
    assert "4 clients in 3 min (usually 0.04" in signal.summary  # one an hour: 0.05 in 3 minutes
    assert signal.evidence["span_clients"] == 4 and signal.evidence["span_s"] == 180.0
    assert signal.evidence["distinct_clients"] == 4 and signal.evidence["p_value"] <= 3e-4
    assert outcomes[-1].link_report_ids == tuple(o.report_id for o in outcomes)


def test_four_clients_spread_over_the_window_wait_for_more() -> None:
    # Four in 27 minutes, where one an hour is usual, is not remarkable enough.
    spread = burst_after_a_day(Stream(), [0, 9, 18, 27])
    assert not any(o.signal for o in spread)
    # The scan switched off: four clients in three minutes wait for the window test, which fires
    # only when the whole window's count is rare enough.
    off = Stream(ReportDetector(surge=SurgeConfig(scan_min_clients=0), encoder=NgramEncoder()))
    outcomes = burst_after_a_day(off, list(range(8)))
    fired = [i for i, o in enumerate(outcomes) if o.signal is not None]
    assert len(fired) == 1 and fired[0] >= 4
    assert f"{fired[0] + 1} clients in 30 min" in outcomes[fired[0]].signal.summary


def test_the_scan_waits_until_the_detector_has_watched_the_traffic() -> None:
    # A fresh deployment knows nothing of how common a complaint is: tight runs are not
    # tested until the baseline has seen an hour of traffic; the window test still is.
    s = Stream()
    at = START + timedelta(hours=10)
    for i in range(6):
        s.report(at + timedelta(minutes=5 * i), f"bg{i}", "other", component="website")
    outcomes = [s.report(at + timedelta(minutes=31 + i), f"client{i}", "card payment failed") for i in range(5)]
    assert [o.signal is not None for o in outcomes] == [False, False, False, False, True]
    with pytest.raises(ValueError, match="scan_min_clients"):
        SurgeConfig(scan_min_clients=1)


def test_surge_test_alone_counts_distinct_clients_in_the_window() -> None:
    test = SurgeTest(SurgeConfig(window_s=600, min_clients=3, p_value=0.5))
    at = START
    verdicts = [test.observe("g", Report(f"r{i}", f"c{i % 2}", "x", at + timedelta(minutes=i))) for i in range(4)]
    assert [v.distinct_clients for v in verdicts] == [1, 2, 2, 2]
    later = test.observe("g", Report("r9", "c9", "x", at + timedelta(minutes=30)))
    assert later.distinct_clients == 1  # the others slid out of the 10-minute window


def test_one_surge_p_value_serves_every_encoder_unless_set() -> None:
    from statusd.reports.textmodel import ReportModel

    assert ReportDetector().surge.config.p_value == 3e-4
    texts = ["I want a refund", "my money back please", "where is my parcel", "the courier never came"]
    model = ReportModel.fit(texts * 3, ["refund", "refund", "delivery", "delivery"] * 3, kind="category")
    detector = ReportDetector(surge=SurgeConfig(min_clients=3, p_value=1e-4), encoder=model.encoder())
    assert (detector.surge.config.p_value, detector.surge.config.min_clients) == (1e-4, 3)
    with pytest.raises(ValueError, match="p_value"):
        SurgeConfig(p_value=0)


@pytest.mark.parametrize(("n", "mean", "size"), [
    (5, 0.4, 2.0), (6, 0.05, 2.0), (20, 3.0, 0.5), (60, 40.0, 2.0), (1200, 1000.0, 2.0), (3, 1.5, 50.0),
    (900, 300.0, 1.0), (1, 0.2, 2.0),
])
def test_nb_tail_matches_one_minus_the_summed_head(n: int, mean: float, size: float) -> None:
    # An independent route: 1 − P(N < n), summing the probability mass of every x below n.
    q = mean / (size + mean)
    head = sum(math.exp(math.lgamma(x + size) - math.lgamma(size) - math.lgamma(x + 1)
                        + size * math.log1p(-q) + x * math.log(q)) for x in range(n))
    expected = 1.0 - head
    assert nb_tail(n, mean, size) == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_nb_tail_edge_cases() -> None:
    assert nb_tail(5, float("nan"), 2.0) == 1.0  # never a surge by arithmetic accident
    assert nb_tail(3, 1e15, 2.0) == 1.0
    # A busy group (mean 10⁶): the tail tends to the gamma(k = 2) one, P(X ≥ t·mean) = e^{−2t}(1 + 2t).
    for t in (1.5, 3.0):
        assert nb_tail(int(t * 1e6), 1e6, 2.0) == pytest.approx(math.exp(-2 * t) * (1 + 2 * t), rel=1e-4)


def test_a_full_window_adds_nothing_for_the_garbage_collector_to_walk() -> None:
    """A flood keeps 30 minutes of reports in the windows; full collections must not grow with them."""
    import gc

    stream = Stream()
    quiet_day(stream)
    at = START + timedelta(days=1)

    def flood(n: int) -> None:  # outcomes not kept, unlike Stream.report
        for _ in range(n):
            stream.n += 1
            stream.detector.observe(Report(f"r{stream.n}", f"c{stream.n}", "card payment failed",
                                           at + timedelta(seconds=stream.n / 100),
                                           tags={"component": "payments", "region": "eu"}))

    flood(200)
    gc.collect()
    before = len(gc.get_objects())
    flood(2000)
    gc.collect()
    assert len(gc.get_objects()) - before < 300  # not three objects a report (6,000), as Report, tags and entry were
    # The window still gives back the reports as they came, for a signal's evidence.
    [window] = [stream.detector.surge.window(key) for key in stream.detector.surge.states if "payments" in key]
    assert len(window) == 2200 and window[-1].tags == {"component": "payments", "region": "eu"}
    assert window[-1].id == f"r{stream.n}" and window[-1].text == "card payment failed"


def test_the_detector_process_freezes_what_survives_a_full_collection() -> None:
    import gc
    import weakref

    from statusd.reports.worker import _LongLived

    try:
        long_lived = _LongLived()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        survivors = [[i] for i in range(1000)]  # containers, tracked
        long_lived.settle()
        assert gc.get_freeze_count() == frozen  # no full collection since: nothing to do
        gc.collect()

        class Node:
            pass
        node = Node()
        node.me = node  # type: ignore[attr-defined]
        cycle = weakref.ref(node)
        del node  # garbage made since the full collection: collected, not frozen for good
        long_lived.settle()
        assert cycle() is None
        assert gc.get_freeze_count() >= frozen + len(survivors)
    finally:
        gc.unfreeze()


def held_in_windows(test: SurgeTest) -> int:
    return sum(len(state.window) for state in test.states.values())


def test_a_flood_is_held_to_max_window_reports_by_cutting_the_longest_window_oldest_first() -> None:
    test = SurgeTest(SurgeConfig(max_window_reports=1000))
    fired = []
    for i in range(3000):  # 3,000 reports in 25 minutes: all inside the 30-minute window
        at = START + timedelta(seconds=i / 2)
        verdict = test.observe("flood", Report(f"f{i}", f"fc{i}", "site down", at))
        fired.append(verdict.fire and not verdict.escalated)
        if i % 300 == 0:  # a quiet group beside it: ten reports
            test.observe("quiet", Report(f"q{i}", f"qc{i}", "slow export", at))
        assert test.held == held_in_windows(test) <= 1000
    assert [r.id for r in test.window("quiet")] == [f"q{i}" for i in range(0, 3000, 300)]  # untouched
    flood = [r.id for r in test.window("flood")]
    assert flood == [f"f{i}" for i in range(3000 - len(flood), 3000)]  # the newest kept, in order
    assert len(flood) >= 800
    assert fired.count(True) == 1  # one surge, whose later reports all belong to it, cut or not
    assert test.incident_reports("flood") == tuple(f"f{i}" for i in range(3000))


def test_the_cut_never_goes_below_the_floor_and_then_waits_for_a_tenth_of_the_cap() -> None:
    from statusd.core.model import WINDOW_FLOOR

    test = SurgeTest(SurgeConfig(max_window_reports=WINDOW_FLOOR * 2))
    sweeps = 0
    trim = test._trim

    def counted() -> None:
        nonlocal sweeps
        sweeps += 1
        trim()
    test._trim = counted  # type: ignore[method-assign]
    for i in range(WINDOW_FLOOR * 5):  # five groups of 64 reports each: more than the cap, none cut
        test.observe(f"g{i % 5}", Report(f"r{i}", f"c{i}", "x", START + timedelta(seconds=i)))
    assert test.held == held_in_windows(test) == WINDOW_FLOOR * 5
    assert all(len(state.window) == WINDOW_FLOOR for state in test.states.values())
    assert sweeps <= (WINDOW_FLOOR * 3) // (WINDOW_FLOOR * 2 // 10) + 1  # not one sweep per report
    with pytest.raises(ValueError, match="max_window_reports"):
        SurgeConfig(max_window_reports=WINDOW_FLOOR - 1)


def test_the_reports_held_are_counted_through_slides_merges_and_forgotten_groups() -> None:
    test = SurgeTest(SurgeConfig(window_s=600))
    for i in range(40):
        test.observe(f"g{i % 4}", Report(f"r{i}", f"c{i}", "x", START + timedelta(seconds=30 * i)))
        assert test.held == held_in_windows(test)
    test.merge("g0", "g1")
    assert test.held == held_in_windows(test)
    test.forget("g2")
    assert test.held == held_in_windows(test)
    test.observe("g0", Report("late", "c-late", "x", START + timedelta(hours=2)))
    assert test.held == held_in_windows(test) == 1 + len(test.states["g3"].window)
