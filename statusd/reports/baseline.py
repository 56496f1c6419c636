"""What a report group usually sees: the negative-binomial tail and the stream's seasonal profile.

Pure arithmetic on the reports' own times (no wall clock, no numpy): the surge test
(statusd.reports.surge) measures each group's distinct clients against these.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta


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
