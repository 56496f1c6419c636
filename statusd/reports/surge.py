"""Report groups → surges: distinct clients in a sliding window against a seasonal, over-dispersed baseline.

Per group, the number of distinct clients in a sliding window is compared with what the
group usually sees: its share of the traffic, times how busy the stream is now (the hour of
day and day of week it has learnt, corrected by the last hour's traffic: statusd.reports.baseline).
Report counts are far burstier than Poisson, so the test uses a negative-binomial tail
(variance μ + μ²/k) and also needs `min_clients`. A scan also tests the tightest recent runs of
`scan_min_clients` or more: four clients within five minutes need not wait for a fifth. After a
signal the group is *active* (every later report of it is linked to the incident) and
*refractory* (no new incident for `refractory_s`).
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from statusd.core.model import WINDOW_FLOOR, ComponentStatus
from statusd.reports.baseline import SeasonalProfile, nb_tail
from statusd.reports.settings import SurgeConfig
from statusd.reports.text import Report

#: The scan (`SurgeTest._scan`) tests this many spans at most, over the newest SCAN_ENTRIES reports.
SCAN_DEPTH = 5
SCAN_ENTRIES = 512
#: The scan chooses its span after seeing the arrivals, so its tails are doubled: a Bonferroni
#: correction as for one more test beside the window's. Its spans are nested and their tails move
#: together; a factor of 7 (about one per span and the window) left it no gain on banking77 (bench/README.md).
SCAN_PENALTY = 2.0
_DEFAULT_STEPS = ((25, ComponentStatus.MAJOR_OUTAGE), (10, ComponentStatus.PARTIAL_OUTAGE),
                  (0, ComponentStatus.DEGRADED_PERFORMANCE))


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
# Literal indices, so a type checker knows each field's type.
_AT: Final = 0
_CLIENT: Final = 1
_FRESH: Final = 2
_WEIGHT: Final = 3
_LINKED: Final = 4
_ID: Final = 5


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
