"""Report groups → Signals: a surge of distinct clients against a seasonal, over-dispersed baseline.

Per group, the number of distinct clients in a sliding window is compared with what the
group usually sees: its share of the traffic, times how busy the stream is now (the hour of
day and day of week it has learnt, corrected by the last hour's traffic). Report counts are
far burstier than Poisson, so the test uses a negative-binomial tail (variance μ + μ²/k) and
also needs `min_clients`. A scan also tests the tightest recent runs of `scan_min_clients`
or more: four clients within five minutes need not wait for a fifth. After a signal the
group is *active* (every later report of it is linked to the incident) and *refractory* (no
new incident for `refractory_s`).

`ReportDetector` is what the intake calls once per report: it groups the report
(`statusd.reports.clustering`) and runs the surge test on its group. Like `statusd.monitor.thresholds` it is
a pure function of its inputs — no I/O, no wall clock, time is the reports' `received_at` —
but it keeps its state in place, because copying a window of vectors per report would cost
far more than the report itself. After a restart, `rebuild` replays recent reports.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import numpy as np

from statusd.reports.clustering import Assignment, Clusterer, ClusteringConfig, Encoder
from statusd.core.model import WINDOW_FLOOR, ComponentStatus, Signal
from statusd.reports.text import Report

# --- statistics ----------------------------------------------------------------------------


def nb_tail(n: int, mean: float, size: float) -> float:
    """P(N ≥ n) for a negative binomial with this mean and size k (variance mean + mean²/k).

    That tail is the regularised incomplete beta I_q(n, k), q = mean / (k + mean), evaluated by
    its continued fraction: a few dozen steps where summing the tail term by term takes
    thousands when the mean is large.
    """
    if n <= 0 or math.isnan(mean):
        return 1.0
    if mean <= 0:
        return 0.0
    if n <= mean:
        return 1.0  # not even above the mean: no surge, whatever the exact tail
    p = _beta_regularized(float(n), size, mean / (size + mean), size / (size + mean))
    return min(1.0, max(0.0, p)) if math.isfinite(p) else 1.0  # never a surge by arithmetic accident


def _beta_regularized(a: float, b: float, x: float, y: float) -> float:
    """I_x(a, b), with y = 1 − x given exactly (Numerical Recipes' betai): the faster side's continued fraction."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, y) / b


def _beta_fraction(a: float, b: float, x: float, eps: float = 1e-14, tiny: float = 1e-300) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((a - 1 + m2) * (a + m2)),
                          -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1 + m2))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


class SeasonalProfile:
    """How busy the stream is at a given time, relative to its long-run mean: factors around 1.

    Two parts multiply:
    - the *shape*: exposure (seconds observed) and counts per hour of day and per day of week
      (UTC), forgotten exponentially, so a change of habits is learned within a few half-lives;
      until a bucket has seen enough, its factor is shrunk toward 1;
    - the *recent correction*: the reports of the last `recent_s` against what the shape
      expected for them. The shape needs days to learn a daily cycle and never sees a
      marketing mail or a holiday; the last hour's traffic does, from the first day on.
      `recent_prior` reports' worth of belief in the shape keeps a quiet stream (a few
      reports an hour) on the shape rather than on its last few arrivals.

    A surge inflates the last hour's traffic only by its own reports: the ten reports of a
    small burst among a hundred an hour raise every group's baseline by a tenth. A flood
    that makes up most of the traffic is measured against a baseline it raised, and still
    stands out by orders of magnitude in its own group.
    """

    BUCKET_S = 300  # recent traffic is counted in buckets of this many seconds

    def __init__(self, halflife_s: float = 14 * 86400.0, prior_s: float = 4 * 3600.0, *,
                 recent_s: float = 3600.0, recent_prior: float = 10.0, keep_s: float = 25 * 3600.0) -> None:
        self.hod_count = [0.0] * 24
        self.hod_expo = [0.0] * 24
        self.dow_count = [0.0] * 7
        self.dow_expo = [0.0] * 7
        self.prior_s = prior_s
        self._hour_decay = 0.5 ** (3600.0 / halflife_s)
        self.at: datetime | None = None
        self.first: float | None = None  # when observing began (epoch seconds)
        self.total_count = 0.0  # sum(hod_count), sum(hod_expo): kept as they change, asked per report
        self.total_expo = 0.0
        self.recent_s = recent_s
        self.recent_prior = recent_prior
        self._span = max(1, round(recent_s / self.BUCKET_S))  # buckets per correction
        self._keep = max(self._span, math.ceil(keep_s / self.BUCKET_S))  # buckets kept: the history searched
        self._buckets: dict[int, float] = {}  # bucket index (epoch // BUCKET_S) → reports, in time order
        self._corrections: dict[int, float] = {}  # bucket index → correction, for buckets already over
        self._before: dict[int, float] = {}  # bucket index → reports in the buckets of its span before it

    def advance(self, now: datetime) -> None:
        """Account for the time observed since the last call, hour by hour."""
        if self.at is None:
            self.at = now
            self.first = now.timestamp()
            return
        t = self.at
        if now <= t:
            return
        # A gap of weeks adds nothing a week of stepping would not; cap the work.
        if (now - t).total_seconds() > 7 * 86400:
            t = now - timedelta(days=7)
        while t < now:
            hour_end = t.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            step_end = min(hour_end, now)
            seconds = (step_end - t).total_seconds()
            self.hod_expo[t.hour] += seconds
            self.dow_expo[t.weekday()] += seconds
            self.total_expo += seconds
            if step_end == hour_end:
                self._decay()
            t = step_end
        self.at = now
        oldest = int(now.timestamp()) // self.BUCKET_S - self._keep
        while self._buckets:
            first = next(iter(self._buckets))
            if first >= oldest:
                break
            del self._buckets[first]
            self._corrections.pop(first, None)
            self._before.pop(first, None)

    def count(self, at: datetime, weight: float = 1.0) -> None:
        """One arrival at `at`."""
        self.hod_count[at.hour] += weight
        self.dow_count[at.weekday()] += weight
        self.total_count += weight
        b = int(at.timestamp()) // self.BUCKET_S
        last = next(reversed(self._buckets)) if self._buckets else b
        if b in self._buckets or b >= last:
            self._buckets[b] = self._buckets.get(b, 0.0) + weight
        else:  # a late arrival for a bucket never counted: rare (backfill); keep the dict in time order
            self._buckets = dict(sorted({**self._buckets, b: weight}.items()))
        if b < last:  # a late arrival changes what was computed from the buckets after it
            self._corrections.clear()
            self._before.clear()

    def rate(self) -> float:
        """Mean arrivals per second over everything observed (0 before any exposure)."""
        return self.total_count / self.total_expo if self.total_expo > 0 else 0.0

    def shape(self, at: datetime) -> float:
        """How much busier than average `at` usually is by hour of day and day of week (1.0 with no history)."""
        mean = self.rate()
        if mean <= 0:
            return 1.0
        a = self.prior_s
        h = (self.hod_count[at.hour] + a * mean) / (self.hod_expo[at.hour] + a) / mean
        d = (self.dow_count[at.weekday()] + a * mean) / (self.dow_expo[at.weekday()] + a) / mean
        return h * d

    def correction(self, at: datetime) -> float:
        """The last `recent_s` up to `at`: reports seen against what the shape expected (1.0 with none seen)."""
        b = int(at.timestamp()) // self.BUCKET_S
        cached = self._corrections.get(b)
        if cached is not None:
            return cached
        if self.at is None or self.first is None:
            return 1.0
        now = self.at.timestamp()
        start = max((b - self._span + 1) * self.BUCKET_S, self.first)
        end = min((b + 1) * self.BUCKET_S, now)
        if end <= start or b < int(now) // self.BUCKET_S - self._keep:
            return 1.0
        before = self._before.get(b)
        if before is None:
            before = self._before[b] = sum(self._buckets.get(i, 0.0) for i in range(b - self._span + 1, b))
        seen = before + self._buckets.get(b, 0.0)
        expected = self.rate() * self.shape(at) * (end - start)
        value = (seen + self.recent_prior) / (expected + self.recent_prior)
        if (b + 1) * self.BUCKET_S <= now:  # an ended bucket's count is final
            self._corrections[b] = value
        return value

    def factor(self, at: datetime) -> float:
        """How much busier than average `at` is: the shape, corrected by the traffic of the hour before."""
        return self.shape(at) * self.correction(at)

    def mean_factor(self, start: datetime, end: datetime) -> float:
        """The factor averaged over [start, end].

        A span shorter than `recent_s` lies within the traffic the correction at `end` has
        counted: that factor stands for all of it. A longer span is averaged bucket by bucket.
        """
        if (end - start).total_seconds() < self.recent_s:
            return self.factor(end)
        total, t = 0.0, start
        step = timedelta(seconds=self.BUCKET_S)
        while t < end:
            step_end = min(t + step, end)
            total += self.factor(t + (step_end - t) / 2) * (step_end - t).total_seconds()
            t = step_end
        return total / (end - start).total_seconds()

    def _decay(self) -> None:
        self._corrections.clear()  # they divide by the shape, which this changes
        k = self._hour_decay
        for arr in (self.hod_count, self.hod_expo, self.dow_count, self.dow_expo):
            for i in range(len(arr)):
                arr[i] *= k
        self.total_count, self.total_expo = sum(self.hod_count), sum(self.hod_expo)  # no drift from the running sums


# --- the surge test ------------------------------------------------------------------------


#: The scan (`SurgeTest._scan`) tests this many spans at most, over the newest SCAN_ENTRIES reports.
SCAN_DEPTH = 5
SCAN_ENTRIES = 512
#: The scan chooses its span after seeing the arrivals, so its tails are doubled: a Bonferroni
#: correction as for one more test beside the window's. Its spans are nested and their tails move
#: together; a factor of 7 (about one per span and the window) left it no gain on banking77 (bench/README.md).
SCAN_PENALTY = 2.0
_DEFAULT_STEPS = ((25, ComponentStatus.MAJOR_OUTAGE), (10, ComponentStatus.PARTIAL_OUTAGE),
                  (0, ComponentStatus.DEGRADED_PERFORMANCE))


@dataclass(frozen=True, slots=True)
class SurgeConfig:
    """When a group's distinct clients are a surge, and what happens after."""

    window_s: float = 1800.0
    min_clients: int = 5
    # A window count at most this likely under the baseline is a surge. One value serves every encoder
    # since the baseline follows the last hour's traffic (bench/README.md): a category model had needed
    # 1e-4 while the day's shape was still unlearnt and every busy hour looked unusual.
    p_value: float = 3e-4
    dispersion: float = 2.0  # negative-binomial size k; smaller = burstier baseline, fewer alarms
    refractory_s: float = 6 * 3600.0  # no second incident for the same group within this time
    # After a signal, later reports of the group join the incident until the group is this quiet.
    # 15 min: on banking77 link precision 0.86 → 0.91 against 60 min, link recall and detection unchanged
    # (bench/README.md); a longer lull also links same-topic reports that are not about the outage.
    active_s: float = 900.0
    prior_share: float = 0.01  # a group without history is expected to get this share of all reports
    prior_s: float = 6 * 3600.0  # how much history outweighs that prior, in seconds of exposure
    halflife_s: float = 14 * 86400.0  # baselines forget at this pace
    severity_steps: tuple[tuple[int, ComponentStatus], ...] = _DEFAULT_STEPS  # (min distinct clients, status)
    max_linked: int = 100_000  # report ids remembered per incident for `incident_reports`
    # A tighter run of at least this many clients inside the window is tested too (0: off), see `_scan`.
    scan_min_clients: int = 4
    # Reports held in all groups' windows together (about 560 bytes each): a flood at 1,000 reports/s
    # would otherwise hold 1.8 million for the 30-minute window. Over it, the largest windows lose their
    # oldest reports first, never below WINDOW_FLOOR each (see `SurgeTest._trim`).
    max_window_reports: int = 200_000

    def __post_init__(self) -> None:
        if (self.window_s <= 0 or self.min_clients < 1 or not 0 < self.p_value < 1
                or self.dispersion <= 0 or self.scan_min_clients < 0 or self.scan_min_clients == 1
                or self.max_window_reports < WINDOW_FLOOR):
            raise ValueError("surge: need window_s > 0, min_clients >= 1, 0 < p_value < 1, dispersion > 0, "
                             f"scan_min_clients 0 or >= 2, max_window_reports >= {WINDOW_FLOOR}")

    def severity(self, distinct_clients: int) -> ComponentStatus:
        """The component status a surge of this many distinct clients implies."""
        for minimum, status in self.severity_steps:
            if distinct_clients >= minimum:
                return status
        return ComponentStatus.DEGRADED_PERFORMANCE


# One report in a group's window, as a plain tuple: (at, client id, fresh, weight, linked,
# report id, text, channel, tags as (key, value, key, value...), contact).
# - fresh: the client's first report in this group's window: counts toward the baseline;
# - weight: 1 / seasonal factor at arrival, so baselines are de-seasonalised;
# - linked: part of an incident: never taught to the baseline.
# A tuple of plain values is an object the garbage collector stops tracking (a subclass of
# tuple is not, and a tuple holding a tuple only after a second pass: hence the flat tags),
# where a Report with its tags is three objects it scans at every full collection. In a
# flood the windows hold 30 minutes of reports: as objects, the detector's full collections
# grew by about 25 ms a minute at 1,000 reports/s, each stalling every report behind it.
_Entry = tuple[datetime, str, bool, float, bool, str, str, str, tuple[str, ...], "str | None"]
_AT, _CLIENT, _FRESH, _WEIGHT, _LINKED, _ID = range(6)


def _entry(report: Report, *, fresh: bool, weight: float, linked: bool) -> _Entry:
    # Channels and tags repeat: one copy each (as decoded from JSON every report has its own).
    return (report.received_at, report.client_id, fresh, weight, linked, report.id, report.text,
            sys.intern(report.channel), tuple(sys.intern(x) for item in report.tags.items() for x in item),
            report.contact)


def _report(e: _Entry) -> Report:
    at, client_id, _, _, _, report_id, text, channel, tags, contact = e
    return Report(report_id, client_id, text, at, channel=channel, tags=dict(zip(tags[::2], tags[1::2])),
                  contact=contact)


def _linked(window: Iterable[_Entry]) -> deque[_Entry]:
    """The entries, every one marked as part of an incident."""
    return deque((*e[:_LINKED], True, *e[_LINKED + 1:]) for e in window)  # type: ignore[misc]


@dataclass(slots=True)
class _GroupState:
    window: deque[_Entry] = field(default_factory=deque)
    clients: Counter[str] = field(default_factory=Counter)
    base_count: float = 0.0  # de-seasonalised distinct-client arrivals that left the window (decayed)
    base_expo: float = 0.0  # seconds observed (decayed)
    base_at: datetime | None = None
    incident_key: str | None = None  # dedup key of the open surge, while active
    fired_at: datetime | None = None
    last_at: datetime | None = None
    severity: ComponentStatus | None = None
    linked: list[str] = field(default_factory=list)
    level: tuple[datetime, float, float] | None = None  # (computed at, de-seasonalised rate, history s), cached


#: For a text group: times and weights of past reports like the group's, and the seconds of history searched.
History = Callable[[], tuple[list[datetime], np.ndarray, float]]


@dataclass(frozen=True, slots=True)
class SurgeVerdict:
    """The surge test's answer for one report's group."""

    fire: bool  # open (or raise the severity of) an incident now
    escalated: bool  # `fire` because an active surge grew to a worse severity
    incident_key: str | None  # dedup key of the active surge this report belongs to
    distinct_clients: int
    reports: int
    expected: float
    p_value: float
    severity: ComponentStatus | None
    link_report_ids: tuple[str, ...]  # ids to link to the incident now (all members when it opens)
    # What `expected` and `p_value` were measured on: the whole window and its distinct clients,
    # or the tighter run of recent clients the scan found (`SurgeTest._scan`).
    span_s: float = 0.0
    span_clients: int = 0


class SurgeTest:
    """Per-group sliding windows, baselines, refractory periods and active incidents."""

    def __init__(self, config: SurgeConfig | None = None) -> None:
        self.config = config or SurgeConfig()
        self.profile = SeasonalProfile(self.config.halflife_s)
        self.states: dict[str, _GroupState] = {}
        self._decay_per_s = math.log(2) / self.config.halflife_s
        self.held = 0  # reports in all windows together
        self._trim_above = self.config.max_window_reports

    def observe(self, key: str, report: Report, history: History | None = None) -> SurgeVerdict:
        """Count one report into group `key` and test the group.

        A group with a stable key (a tag) learns its own baseline; an ad-hoc text group passes
        `history`, and its baseline is how often such reports came in before it existed.
        """
        cfg = self.config
        at = report.received_at
        self.profile.advance(at)
        self.profile.count(at)
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = _GroupState(base_at=at)
        self._slide(state, at)
        self._end_if_quiet(state, at)
        fresh = state.clients[report.client_id] == 0
        active = state.incident_key is not None
        entry = _entry(report, fresh=fresh, weight=1.0 / self.profile.factor(at), linked=active)
        state.window.append(entry)
        state.clients[report.client_id] += 1
        state.last_at = at
        self.held += 1
        if self.held > self._trim_above:
            self._trim()

        distinct = len(state.clients)
        if active:
            expected = self.expected(key, at, history)
            if len(state.linked) < cfg.max_linked:
                state.linked.append(report.id)
            severity = cfg.severity(distinct)
            worse = state.severity is not None and severity.rank > state.severity.rank
            if worse:
                state.severity = severity
            p = nb_tail(distinct, expected, cfg.dispersion) if worse else 1.0  # only shown when it speaks
            return SurgeVerdict(worse, worse, state.incident_key, distinct, len(state.window), expected, p,
                                severity, (report.id,))
        refractory = (state.fired_at is not None
                      and (at - state.fired_at).total_seconds() < cfg.refractory_s)
        floor = min(cfg.min_clients, cfg.scan_min_clients or cfg.min_clients)
        if not fresh or distinct < floor or refractory:
            return SurgeVerdict(False, False, None, distinct, len(state.window), 0.0, 1.0, None, ())
        level, watched_s = self._level(key, at, history)
        expected = self._over(level, at - timedelta(seconds=cfg.window_s), at)
        p = nb_tail(distinct, expected, cfg.dispersion) if distinct >= cfg.min_clients else 1.0
        span_s, clients = cfg.window_s, distinct
        # The scan needs a baseline that has seen the traffic of a whole recent period; before that
        # (a fresh deployment) its short spans measure mostly the prior.
        if cfg.scan_min_clients and watched_s >= self.profile.recent_s:
            scan_p, scan_span_s, scan_clients, scan_expected = self._scan(state, at, level)
            if scan_p < p:
                p, span_s, clients, expected = scan_p, scan_span_s, scan_clients, scan_expected
        if p > cfg.p_value:
            return SurgeVerdict(False, False, None, distinct, len(state.window), expected, p, None, ())
        state.incident_key = f"reports:{key}"
        state.fired_at = at
        state.severity = cfg.severity(distinct)
        ids = tuple(e[_ID] for e in state.window)
        state.window = _linked(state.window)
        state.linked = list(ids[:cfg.max_linked])
        return SurgeVerdict(True, False, state.incident_key, distinct, len(state.window), expected, p,
                            state.severity, ids, span_s, clients)

    def _scan(self, state: _GroupState, at: datetime, level: float) -> tuple[float, float, int, float]:
        """The tightest run of recent clients: (p-value, span, clients, expected), the lowest p-value.

        For k = scan_min_clients … + SCAN_DEPTH − 1, the span reaches back to the k-th most recent
        distinct client, and k − 1 more arrivals in it are tested against the baseline over that
        span. Four clients within five minutes can be far less likely than five within thirty:
        the window test alone waits for the fifth.
        """
        cfg = self.config
        best = (1.0, cfg.window_s, 0, 0.0)
        seen: set[str] = set()
        for e in itertools.islice(reversed(state.window), SCAN_ENTRIES):
            client, start = e[_CLIENT], e[_AT]
            if client in seen or start > at:  # (a backfilled report is older than the window's newest)
                continue
            seen.add(client)
            k = len(seen)
            if k < cfg.scan_min_clients:
                continue
            expected = self._over(level, start, at)
            p = min(1.0, nb_tail(k - 1, expected, cfg.dispersion) * SCAN_PENALTY)
            if p < best[0]:
                best = (p, (at - start).total_seconds(), k, expected)
            if k >= cfg.scan_min_clients + SCAN_DEPTH - 1:
                break
        return best

    def expected(self, key: str, at: datetime, history: History | None = None) -> float:
        """Distinct clients the group `key` usually has in one window ending at `at`."""
        return self._over(self._level(key, at, history)[0], at - timedelta(seconds=self.config.window_s), at)

    def _over(self, level: float, start: datetime, end: datetime) -> float:
        """Arrivals expected over [start, end] at a de-seasonalised `level` per second."""
        return level * (end - start).total_seconds() * self.profile.mean_factor(start, end)

    def _level(self, key: str, at: datetime, history: History | None = None) -> tuple[float, float]:
        cfg = self.config
        state = self.states.get(key)
        prior_rate = cfg.prior_share * self._deseasonalised_rate()
        if history is not None:
            if state is not None and state.level is not None and (at - state.level[0]).total_seconds() < 60:
                _, level, expo = state.level
            else:
                times, weights, expo = history()
                count = sum(float(w) / self.profile.factor(t) for t, w in zip(times, weights))
                level = (count + prior_rate * cfg.prior_s) / (expo + cfg.prior_s)
                if state is not None:
                    state.level = (at, level, expo)
        else:
            count, expo = 0.0, 0.0
            if state is not None:
                self._age(state, at)
                count, expo = state.base_count, state.base_expo
            level = (count + prior_rate * cfg.prior_s) / (expo + cfg.prior_s)
        return level, expo

    def window(self, key: str) -> list[Report]:
        """The reports of group `key` in the current window, oldest first."""
        state = self.states.get(key)
        return [_report(e) for e in state.window] if state else []

    def incident_reports(self, key: str) -> tuple[str, ...]:
        """Report ids linked to the group's current or last surge, in arrival order."""
        state = self.states.get(key)
        return tuple(state.linked) if state else ()

    def active(self) -> dict[str, str]:
        """Group key → incident dedup key of every active surge."""
        return {k: s.incident_key for k, s in self.states.items() if s.incident_key is not None}

    def merge(self, into: str, absorbed: str) -> None:
        """Fold the state of a group the clusterer merged away into its survivor."""
        gone = self.states.pop(absorbed, None)
        if gone is None:
            return
        state = self.states.setdefault(into, _GroupState(base_at=gone.base_at))
        if state.base_at is not None and gone.base_at is not None:
            self._age(state, gone.base_at if gone.base_at > state.base_at else state.base_at)
            self._age(gone, state.base_at)
        absorbed_window = _linked(gone.window) if state.incident_key is not None else gone.window
        state.window = deque(sorted([*state.window, *absorbed_window], key=lambda e: e[_AT]))
        state.clients = Counter(e[_CLIENT] for e in state.window)
        state.base_count += gone.base_count
        state.base_expo = max(state.base_expo, gone.base_expo)  # both watched the same hours
        if state.incident_key is not None:
            state.linked.extend(e[_ID] for e in gone.window)

    def forget(self, key: str) -> None:
        """Drop a group's state (the clusterer forgot the group)."""
        state = self.states.pop(key, None)
        if state is not None:
            self.held -= len(state.window)

    def end_quiet(self, now: datetime) -> list[str]:
        """End every active surge quiet for `active_s`; returns their group keys."""
        ended = []
        for key, state in self.states.items():
            if state.incident_key is not None and self._end_if_quiet(state, now):
                ended.append(key)
        return ended

    # -- internals --

    def _deseasonalised_rate(self) -> float:
        # A quiet stream (one report an hour) worth an hour of exposure: without it, a fresh
        # deployment's first burst would set the "normal" rate itself and never look like a surge;
        # any longer and the first hours of a busy stream would look quieter than they are.
        return (self.profile.total_count + 1.0) / (self.profile.total_expo + 3600.0)

    def _end_if_quiet(self, state: _GroupState, now: datetime) -> bool:
        if state.incident_key is None or state.last_at is None:
            return False
        if (now - state.last_at).total_seconds() < self.config.active_s:
            return False
        state.incident_key = None
        state.severity = None
        return True

    def _age(self, state: _GroupState, now: datetime) -> None:
        if state.base_at is None:
            state.base_at = now
            return
        dt = (now - state.base_at).total_seconds()
        if dt <= 0:
            return
        decay = math.exp(-self._decay_per_s * dt)
        state.base_count *= decay
        # Exposure integrates the decayed time elapsed: ∫ e^{-λ(now-s)} ds over the step.
        state.base_expo = state.base_expo * decay + (1 - decay) / self._decay_per_s
        state.base_at = now

    def _slide(self, state: _GroupState, now: datetime) -> None:
        self._age(state, now)
        window = self.config.window_s
        while state.window and (now - state.window[0][_AT]).total_seconds() > window:
            self._leave(state)

    def _leave(self, state: _GroupState) -> None:
        """The oldest report leaves the group's window: its client may go, its arrival teaches the baseline."""
        e = state.window.popleft()
        self.held -= 1
        client = e[_CLIENT]
        state.clients[client] -= 1
        if state.clients[client] <= 0:
            del state.clients[client]
        if e[_FRESH] and not e[_LINKED]:
            state.base_count += e[_WEIGHT]

    def _trim(self) -> None:
        """Bring the reports held to 90 % of `max_window_reports`, oldest first from the longest windows.

        Every window longer than a common length L is cut to L (water-filling), L as large as the
        target allows but not below WINDOW_FLOOR. A window that long is a surge or a flood: its
        distinct clients, counted over the reports it keeps, are still far above any threshold.
        Cutting a tenth below the cap makes this O(groups) sweep rare: once per 20,000 reports at
        the default cap. When the floor keeps more than the cap (many groups, each at the floor),
        the next sweep waits for another tenth of the cap all the same.
        """
        target = self.config.max_window_reports * 9 // 10
        sizes = np.fromiter((len(s.window) for s in self.states.values()), dtype=np.int64, count=len(self.states))
        lo, hi = WINDOW_FLOOR, int(sizes.max(initial=0))
        while lo < hi:  # the largest L with sum(min(size, L)) <= target
            mid = (lo + hi + 1) // 2
            if int(np.minimum(sizes, mid).sum()) <= target:
                lo = mid
            else:
                hi = mid - 1
        for state in self.states.values():
            while len(state.window) > lo:
                self._leave(state)
        cap = self.config.max_window_reports
        self._trim_above = max(cap, self.held + cap // 10)


# --- the detector the intake calls --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What became of one report: its group, a Signal if it tipped a surge, and what to link to the incident."""

    report_id: str
    group_key: str
    signal: Signal | None
    incident_key: str | None  # dedup key of the incident this report belongs to (None: not part of a surge)
    link_report_ids: tuple[str, ...]  # link these to that incident now: every member when it opens, else this one
    opened: bool = False  # `signal` starts a new surge (False when it only raises an active one's severity)
    merged: tuple[tuple[str, str], ...] = ()  # (absorbed, into) group keys merged while this report came in


class ReportDetector:
    """Groups each report and tests its group for a surge; call `observe` once per report, in time order."""

    def __init__(self, clustering: ClusteringConfig | None = None, surge: SurgeConfig | None = None,
                 encoder: Encoder | None = None, *, learn: bool = True) -> None:
        self.clusterer = Clusterer(clustering, encoder, learn=learn)
        self.surge = SurgeTest(surge)
        self._swept_at: datetime | None = None
        self._rebuilt: dict[str, ReportOutcome] = {}  # incident key → latest outcome that signalled in `rebuild`

    def observe(self, report: Report) -> ReportOutcome:
        """Fold one report in; the returned Signal (if any) goes to the coordinator."""
        at = report.received_at
        assignment: Assignment = self.clusterer.assign(report.id, report.text, at, report.tags)
        key = assignment.group_key
        for absorbed, into in assignment.merged:
            self.surge.merge(into, absorbed)
        self._sweep(at)
        group = self.clusterer.groups.get(key)
        history = None if group is None or group.tagged else self._history(key, at)
        verdict = self.surge.observe(key, report, history)
        signal = None
        if verdict.fire:
            self.clusterer.pin(key)
            signal = self._signal(key, report, verdict)
        return ReportOutcome(report.id, key, signal, verdict.incident_key, verdict.link_report_ids,
                             opened=verdict.fire and not verdict.escalated, merged=assignment.merged)

    def rebuild(self, reports: Iterable[Report]) -> list[ReportOutcome]:
        """Warm up after a restart from recent stored reports, oldest first; returns the surges still active.

        Their signals are not sent from here: most were handled before the restart. But a process
        killed between storing a report and handling its surge lost that signal, or the links of
        its reports. So each surge that fired while warming up and is still active comes back as
        its latest outcome, linking every report of the surge, for the caller to check against the
        incidents (`ReportIntake.rebuild`). Calls add up: the rebuild may come in chunks.
        """
        for report in reports:
            outcome = self.observe(report)
            if outcome.signal is not None and outcome.incident_key is not None:
                self._rebuilt[outcome.incident_key] = outcome
        active = {incident_key: key for key, incident_key in self.surge.active().items()}
        return [replace(outcome, group_key=active[incident_key],
                        link_report_ids=self.surge.incident_reports(active[incident_key]))
                for incident_key, outcome in self._rebuilt.items() if incident_key in active]

    def members(self, group_key: str) -> tuple[str, ...]:
        """Report ids of the group in the clustering window."""
        return self.clusterer.members(group_key)

    def incident_reports(self, group_key: str) -> tuple[str, ...]:
        """Report ids linked to the group's current or last surge."""
        return self.surge.incident_reports(self.clusterer.resolve(group_key))

    def _history(self, key: str, at: datetime) -> History:
        clusterer = self.clusterer

        def history() -> tuple[list[datetime], np.ndarray, float]:
            times, weights = clusterer.history_matches(key)
            return times, weights, clusterer.history_span_s(at)
        return history

    def _sweep(self, now: datetime) -> None:
        # Housekeeping a few times per surge window: end quiet surges, drop state of forgotten groups.
        if self._swept_at is not None and (now - self._swept_at).total_seconds() < self.surge.config.window_s / 4:
            return
        self._swept_at = now
        for key in self.surge.end_quiet(now):
            self.clusterer.unpin(key)
        groups = self.clusterer.groups
        for key in [k for k, s in self.surge.states.items()
                    if k not in groups and k.startswith("text:") and s.incident_key is None]:
            self.surge.forget(key)

    def _signal(self, key: str, report: Report, verdict: SurgeVerdict) -> Signal:
        window = self.surge.window(key)
        component = self._component(key, window)
        texts = self._samples(key, window)
        span_s = verdict.span_s or self.surge.config.window_s
        clients = verdict.span_clients or verdict.distinct_clients
        about = f"{component}: " if component else ""
        verb = "grew to" if verdict.escalated else "surge:"
        summary = (f"{about}customer reports {verb} {clients} clients in {max(1, round(span_s / 60))} min "
                   f"(usually {verdict.expected:.2g}), e.g. \u201c{_clip(texts[0] if texts else report.text)}\u201d")
        channels = Counter(r.channel for r in window)
        regions = Counter(r.tags.get("region") for r in window if r.tags.get("region"))
        evidence = {
            "group_key": key,
            "counts": {"reports": verdict.reports, "by_channel": dict(sorted(channels.items())),
                       "by_region": dict(sorted(regions.items()))},
            "distinct_clients": verdict.distinct_clients,
            "expected": round(verdict.expected, 3),
            "p_value": float(f"{verdict.p_value:.3g}"),
            "window_s": self.surge.config.window_s,
            "span_s": round(span_s, 1),  # what `expected` and `p_value` were measured on
            "span_clients": clients,
            "sample_texts": [_clip(t) for t in texts[:5]],
            "report_ids": list(verdict.link_report_ids),
        }
        assert verdict.severity is not None and verdict.incident_key is not None
        return Signal(source="reports", dedup_key=verdict.incident_key,
                      components=(component,) if component else (), severity=verdict.severity,
                      summary=summary, at=report.received_at, firing=True, evidence=evidence)

    def _component(self, key: str, window: list[Report]) -> str | None:
        for part in key.split("/"):
            if part.startswith("component:"):
                return part.removeprefix("component:")
        named = Counter(r.tags["component"] for r in window if r.tags.get("component"))
        if named:
            component, n = sorted(named.items(), key=lambda kv: (-kv[1], kv[0]))[0]
            if n * 2 >= len(window):  # only when most of the group says so
                return component
        return None

    def _samples(self, key: str, window: list[Report]) -> list[str]:
        """Up to five distinct texts, the most typical of the group first."""
        ids, vectors = self.clusterer.vectors_of(key)
        order: list[str] = []
        if len(ids) >= 2:
            centre = vectors.mean(axis=0)
            scores = vectors @ centre
            order = [ids[i] for i in np.argsort(-scores, kind="stable")]
        texts_by_id = {r.id: r.text for r in window}
        out: list[str] = []
        for rid in [*order, *texts_by_id]:
            text = texts_by_id.get(rid)
            if text and text not in out:
                out.append(text)
            if len(out) == 5:
                break
        return out


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"
