"""Online grouping of customer reports: by tag when the report names a component or category, by text otherwise.

Reports of one outage arrive as a burst of paraphrases. Comparing each report with a group
centroid (single-pass clustering) fragments such a burst into many small groups, so here a
new report is compared with every report of the recent window and joins the group in which
it has enough near neighbours; a report whose neighbours sit in two groups is evidence that
those groups are one topic, and enough such evidence merges them.

Texts become L2-normalised vectors (statusd.reports.encoders) so one matrix product scores a
report against the whole window. Everything is deterministic and bounded: the window holds at
most `max_items` reports and at most `max_groups` groups are remembered. The buffers behind
the window, the group sums and the history start small and grow as the stream needs them
(statusd.reports.buffers), up to what those bounds need.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from statusd.reports.buffers import mapped, moved, moved_list, next_size, regrown
from statusd.reports.encoders import Encoder, NgramEncoder
from statusd.reports.settings import ClusteringConfig


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one report went, whether its group is new, and merges done meanwhile as (absorbed, into) pairs."""

    group_key: str
    created: bool
    similarity: float  # mean similarity to the group's other members (0 for a new group)
    merged: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Group:
    """A set of reports believed to be about one thing; `members` are report ids still in the window."""

    key: str
    gid: int
    created_at: datetime
    last_at: datetime
    tagged: bool
    pinned: bool = False  # a pinned group is never absorbed by a merge (it has an open incident)
    members: deque[str] = field(default_factory=deque)
    size: int = 0  # reports ever assigned, merges included
    slot: int | None = None  # row of the group's vector sum while it has members in the window


def _scores(rows: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """`rows @ vec`; for a sparse vec only the columns of its non-zero entries are read.

    The window's group sums and the history are column-major, so each such column is
    contiguous: a TF-IDF vector has about 80 of its 1,024 entries set, and scoring it against
    a full window reads a tenth of the matrix.
    """
    nz = np.flatnonzero(vec)
    if len(nz) * 4 < len(vec):
        return rows[:, nz] @ vec[nz]
    return rows @ vec


def tag_group_key(tags: Mapping[str, str], keys: Sequence[str] = ("component", "category")) -> str | None:
    """The group key of a tagged report ("component:payments/category:login"), or None when it has none of `keys`."""
    parts = [f"{k}:{tags[k]}" for k in keys if tags.get(k)]
    return "/".join(parts) if parts else None


class Clusterer:
    """Assigns each report to a group, online; deterministic for a given input order.

    The mean similarity of a vector to a group's members is its dot product with the sum of
    their vectors divided by their number, so each group in the window keeps that sum: joining
    scores a report against every group with one matrix-vector product, and the average-linkage
    similarity of two groups is the dot product of their sums over the product of their sizes.

    Its buffers start with `initial_rows` rows each and double as needed up to their caps (twice
    `max_items`, `max_items` + 1, twice `history_items`); growth changes where rows sit, never
    what is computed. An `initial_rows` at or above the caps allocates everything up front.
    """

    def __init__(self, config: ClusteringConfig | None = None, encoder: Encoder | None = None,
                 *, learn: bool = True, initial_rows: int = 64) -> None:
        self.encoder: Encoder = encoder or NgramEncoder()
        self.config = config or ClusteringConfig.for_encoder(getattr(self.encoder, "kind", "tfidf"))
        self.learn = learn
        if initial_rows < 1:
            raise ValueError("clustering: initial_rows must be at least 1")
        cap, dim = self.config.max_items, self.encoder.dim
        # The window lives in rows [_start, _end) of a double buffer (up to twice its cap); when the
        # end is reached the live rows move to the front, so the copying costs O(1) per report on average.
        rows = min(initial_rows, 2 * cap)
        self._vectors = mapped((rows, dim))
        self._gids = np.zeros(rows, dtype=np.int64)
        self._times: list[datetime | None] = [None] * rows
        self._ids: list[str | None] = [None] * rows
        self._start = self._end = 0
        # Rows [0, _k) hold the vector sums and live member counts of the groups in the window; rows
        # from _k on are zeros. The cap: a merge may hold one group more than the window has reports.
        rows = min(initial_rows, cap + 1)
        self._sums = mapped((rows, dim), order="F")
        self._counts = np.zeros(rows, dtype=np.float64)
        self._join_thresholds = np.asarray(self.config.threshold(np.maximum(np.arange(cap + 2, dtype=np.float64), 1)))
        self._slot_group: list[Group | None] = [None] * rows
        self._k = 0
        self.groups: dict[str, Group] = {}
        self._by_gid: dict[int, Group] = {}
        self._next_gid = 0
        self._alias: dict[str, str] = {}  # absorbed group key → surviving key
        self._merged_at: datetime | None = None
        self._changed: set[int] = set()  # groups that got reports since the last merge check
        self._swept_at: datetime | None = None
        # History: reports that left the window, one in `_stride` kept with that weight, so a
        # bounded buffer spans `history_s` at any rate. Rows [_h_start, _h_end) of a double buffer.
        rows = min(initial_rows, 2 * self.config.history_items)
        self._h_vectors = mapped((rows, dim), order="F")  # column-major: see _scores
        self._h_times: list[datetime | None] = [None] * rows
        self._h_weights = np.zeros(rows, dtype=np.float64)
        self._h_start = self._h_end = 0
        self._stride = 1
        self._skipped = 0
        self.first_at: datetime | None = None

    # -- queries --

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def capacities(self) -> tuple[int, int, int]:
        """Rows allocated now for the window, the group sums and the history (each grows up to its cap)."""
        return len(self._ids), len(self._slot_group), len(self._h_times)

    def resolve(self, key: str) -> str:
        """The surviving key of a group that may have been merged away."""
        for _ in range(64):
            if key not in self._alias:
                break
            key = self._alias[key]
        return key

    def members(self, key: str) -> tuple[str, ...]:
        """Report ids of the group still in the window, oldest first."""
        group = self.groups.get(self.resolve(key))
        return tuple(group.members) if group else ()

    def vectors_of(self, key: str) -> tuple[list[str], np.ndarray]:
        """Report ids and vectors of the group's members still in the window."""
        group = self.groups.get(self.resolve(key))
        if group is None:
            return [], np.zeros((0, self.encoder.dim), dtype=np.float32)
        rows = self._start + np.flatnonzero(self._gids[self._start:self._end] == group.gid)
        return [self._ids[i] or "" for i in rows.tolist()], self._vectors[rows]

    def cohesion(self, key: str) -> float:
        """Mean similarity between two distinct members of the group in the window (0 below two members)."""
        group = self.groups.get(self.resolve(key))
        if group is None or group.slot is None or self._counts[group.slot] < 2:
            return 0.0
        n = self._counts[group.slot]
        total = float(self._sums[group.slot] @ self._sums[group.slot])
        return (total - n) / (n * (n - 1))  # the sum's square counts each member with itself once (unit vectors)

    def history_matches(self, key: str) -> tuple[list[datetime], np.ndarray]:
        """Times and weights of past reports (left the window, within `history_s`) that would have joined the group."""
        group = self.groups.get(self.resolve(key))
        lo, hi = self._h_start, self._h_end
        if group is None or group.slot is None or hi == lo:
            return [], np.zeros(0)
        n = self._counts[group.slot]
        means = _scores(self._h_vectors[lo:hi], self._sums[group.slot]) / n
        hits = np.flatnonzero(means >= self.config.threshold(n))
        return [self._h_times[lo + i] or datetime.min for i in hits.tolist()], self._h_weights[lo + hits]

    def history_span_s(self, now: datetime) -> float:
        """Seconds of the stream the history covers: from `history_s` ago (or the first report) until the window."""
        if self.first_at is None:
            return 0.0
        start = max(self.first_at, now - timedelta(seconds=self.config.history_s))
        return max(0.0, (now - start).total_seconds() - self.config.window_s)

    def pin(self, key: str) -> None:
        """Keep this group's key: merges absorb other groups into it, never it into another."""
        group = self.groups.get(self.resolve(key))
        if group is not None:
            group.pinned = True

    def unpin(self, key: str) -> None:
        """Let this group be absorbed again."""
        group = self.groups.get(self.resolve(key))
        if group is not None:
            group.pinned = False

    # -- the one operation --

    def assign(self, report_id: str, text: str, at: datetime, tags: Mapping[str, str] | None = None) -> Assignment:
        """Put one report into a group and into the window; reports must come in time order."""
        cfg = self.config
        if self.first_at is None:
            self.first_at = at
        self._expire(at)
        merged: list[tuple[str, str]] = []
        if self._merged_at is None or (at - self._merged_at).total_seconds() >= cfg.merge_interval_s:
            self._merged_at = at
            changed, self._changed = self._changed, set()
            merged = self.merge(changed)
        vec = self.encoder.encode(text)
        if self.learn:
            self.encoder.learn(text)

        tag_key = tag_group_key(tags or {}, cfg.tag_keys)
        group: Group | None = None
        similarity = 0.0
        created = False
        if tag_key is not None:
            group = self.groups.get(tag_key)
            if group is None:
                group = self._new_group(tag_key, at, tagged=True)
                created = True
        elif self._k and vec.any():
            k = self._k
            counts = self._counts[:k]
            means = _scores(self._sums[:k], vec) / counts
            margin = means - self._join_thresholds[counts.astype(np.intp)]
            best = int(np.argmax(margin))
            if margin[best] >= 0:
                group = self._slot_group[best]
                similarity = float(means[best])
        if group is None:
            group = self._new_group(f"text:{report_id}", at, tagged=False)
            created = True
        group.last_at = at
        group.members.append(report_id)
        group.size += 1
        self._changed.add(group.gid)
        self._append(report_id, group, vec, at)
        if len(self.groups) > cfg.max_groups:
            self._evict_groups()
        return Assignment(group.key, created, similarity, tuple(merged))

    def merge(self, changed: Iterable[int] | None = None) -> list[tuple[str, str]]:
        """Average-linkage merges of the window's groups; returns (absorbed, into) key pairs in order.

        Only pairs involving a group in `changed` (internal ids; None: every group) are checked,
        since only they can have come closer since the last check.
        """
        merged: list[tuple[str, str]] = []
        todo = set(range(self._next_gid)) if changed is None else set(changed)
        for _ in range(1024):  # each round merges one pair; the bound only guards against surprises
            rows = sorted(g.slot for gid in todo if (g := self._by_gid.get(gid)) is not None and g.slot is not None)
            pair = self._best_pair(rows)
            if pair is None:
                break
            keep, drop = pair if self._survives(*pair) else (pair[1], pair[0])
            merged.append((drop.key, keep.key))
            self._absorb(keep, drop)
            todo = {keep.gid}
        return merged

    def _best_pair(self, rows: list[int]) -> tuple[Group, Group] | None:
        k = self._k
        if not rows or k < 2:
            return None
        counts = self._counts[:k]
        sums = self._sums[rows] @ self._sums[:k].T
        means = sums / np.outer(counts[rows], counts)
        margin = means - self.config.threshold(np.outer(counts[rows], counts))
        groups = self._slot_group[:k]
        tagged = np.array([g.tagged for g in groups if g is not None])
        pinned = np.array([g.pinned for g in groups if g is not None])
        # Two tagged or two pinned groups never merge: each is its own incident already.
        blocked = (tagged[rows][:, None] & tagged[None, :]) | (pinned[rows][:, None] & pinned[None, :])
        blocked[np.arange(len(rows)), rows] = True
        margin[blocked] = -np.inf
        i, j = divmod(int(np.argmax(margin)), k)
        if not margin[i, j] >= 0:
            return None
        a, b = groups[rows[i]], groups[j]
        assert a is not None and b is not None
        return a, b

    # -- internals --

    def _new_group(self, key: str, at: datetime, *, tagged: bool) -> Group:
        group = Group(key, self._next_gid, at, at, tagged)
        self._next_gid += 1
        self.groups[key] = group
        self._by_gid[group.gid] = group
        return group

    def _append(self, report_id: str, group: Group, vec: np.ndarray, at: datetime) -> None:
        cap = self.config.max_items
        if self._end - self._start >= cap:  # the window is full: the oldest report leaves early
            self._drop_oldest()
        if self._end == len(self._ids):
            lo, hi = self._start, self._end
            size = next_size(len(self._ids), hi - lo, 2 * cap)
            self._vectors = moved(self._vectors, size, lo, hi)
            self._gids = moved(self._gids, size, lo, hi)
            self._times = moved_list(self._times, size, lo, hi)
            self._ids = moved_list(self._ids, size, lo, hi)
            self._start, self._end = 0, hi - lo
        i = self._end
        self._vectors[i] = vec
        self._gids[i] = group.gid
        self._times[i] = at
        self._ids[i] = report_id
        self._end += 1
        if group.slot is None:
            self._take_slot(group)
        assert group.slot is not None
        self._sums[group.slot] += vec
        self._counts[group.slot] += 1

    def _take_slot(self, group: Group) -> None:
        """Give the group the next row of the sums (zeros), growing them when they are full."""
        if self._k == len(self._slot_group):
            size = min(2 * self._k, self.config.max_items + 1)
            self._sums = regrown(self._sums, size, self._k, "F")
            self._counts = regrown(self._counts, size, self._k)
            self._slot_group = [*self._slot_group, *[None] * (size - self._k)]
        group.slot = self._k
        self._slot_group[self._k] = group
        self._k += 1

    def _drop_oldest(self) -> None:
        i = self._start
        group = self._by_gid.get(int(self._gids[i]))
        report_id = self._ids[i]
        self._remember(self._vectors[i], self._times[i])
        self._times[i] = None
        self._ids[i] = None
        self._start += 1
        if group is None:
            return
        if group.members:
            if group.members[0] == report_id:
                group.members.popleft()
            elif report_id is not None and report_id in group.members:
                group.members.remove(report_id)
        if group.slot is not None:
            self._counts[group.slot] -= 1
            if self._counts[group.slot] <= 0:
                self._free_slot(group)
            else:
                self._sums[group.slot] -= self._vectors[i]

    def _remember(self, vec: np.ndarray, at: datetime | None) -> None:
        if at is None:
            return
        hcap = self.config.history_items
        horizon = at - timedelta(seconds=self.config.history_s)
        while self._h_start < self._h_end and (self._h_times[self._h_start] or horizon) <= horizon:
            self._h_times[self._h_start] = None
            self._h_start += 1
        self._skipped += 1
        if self._skipped < self._stride:
            return
        self._skipped = 0
        if self._h_end - self._h_start >= hcap:
            # Full before spanning history_s: keep every other report at twice the weight.
            lo, hi = self._h_start, self._h_end
            keep = slice(lo, hi, 2)  # a strided view: a fancy index would gather the column-major rows ten times slower
            times = self._h_times[keep]
            n = len(times)
            self._h_vectors[:n] = self._h_vectors[keep]
            self._h_weights[:n] = self._h_weights[keep] * 2
            self._h_times[:] = [None] * len(self._h_times)
            self._h_times[:n] = times
            self._h_start, self._h_end = 0, n
            self._stride *= 2
        elif self._stride > 1 and self._h_end - self._h_start < hcap // 4:
            self._stride //= 2  # the rate fell: sample more densely again
        if self._h_end == len(self._h_times):
            lo, hi = self._h_start, self._h_end
            size = next_size(len(self._h_times), hi - lo, 2 * hcap)
            self._h_vectors = moved(self._h_vectors, size, lo, hi, "F")
            self._h_weights = moved(self._h_weights, size, lo, hi)
            self._h_times = moved_list(self._h_times, size, lo, hi)
            self._h_start, self._h_end = 0, hi - lo
        i = self._h_end
        self._h_vectors[i] = vec
        self._h_weights[i] = self._stride
        self._h_times[i] = at
        self._h_end += 1

    def _free_slot(self, group: Group) -> None:
        slot, last = group.slot, self._k - 1
        assert slot is not None
        if slot != last:  # keep rows [0, _k) dense: move the last group into the hole
            moved = self._slot_group[last]
            assert moved is not None
            self._sums[slot] = self._sums[last]
            self._counts[slot] = self._counts[last]
            self._slot_group[slot] = moved
            moved.slot = slot
        self._sums[last] = 0.0
        self._counts[last] = 0.0
        self._slot_group[last] = None
        self._k = last
        group.slot = None

    def _expire(self, now: datetime) -> None:
        window = self.config.window_s
        while self._start < self._end:
            oldest = self._times[self._start]
            if oldest is None or (now - oldest).total_seconds() <= window:
                break
            self._drop_oldest()
        ttl = self.config.group_ttl_s
        # A sweep over all groups is O(groups): do it a few times per TTL, not per report.
        if self._swept_at is None or (now - self._swept_at).total_seconds() > ttl / 8:
            self._swept_at = now
            self._forget(now, ttl)

    def _forget(self, now: datetime, ttl: float) -> None:
        stale = [k for k, g in self.groups.items()
                 if g.slot is None and not g.pinned and (now - g.last_at).total_seconds() > ttl]
        for k in stale:
            self._by_gid.pop(self.groups.pop(k).gid, None)
        if stale:
            self._alias = {a: b for a, b in self._alias.items() if b in self.groups}

    def _evict_groups(self) -> None:
        # Over the cap: forget the groups idle longest that have nothing in the window.
        idle = sorted((g.last_at, g.gid, k) for k, g in self.groups.items() if g.slot is None and not g.pinned)
        excess = len(self.groups) - self.config.max_groups
        for _, _, k in idle[:max(excess, len(self.groups) // 10)]:
            self._by_gid.pop(self.groups.pop(k).gid, None)

    @staticmethod
    def _survives(a: Group, b: Group) -> bool:
        """Whether `a` keeps its key when merged with `b`: tagged, else pinned, else older."""
        return (not a.tagged, not a.pinned, a.created_at, a.gid) <= (not b.tagged, not b.pinned, b.created_at, b.gid)

    def _absorb(self, survivor: Group, absorbed: Group) -> None:
        lo, hi = self._start, self._end
        gids = self._gids[lo:hi]
        gids[gids == absorbed.gid] = survivor.gid
        if absorbed.slot is not None:
            if survivor.slot is None:
                self._take_slot(survivor)
            assert survivor.slot is not None
            self._sums[survivor.slot] += self._sums[absorbed.slot]
            self._counts[survivor.slot] += self._counts[absorbed.slot]
            self._free_slot(absorbed)
        live = set(survivor.members) | set(absorbed.members)
        survivor.members = deque(r for r in self._ids[lo:hi] if r in live)
        survivor.size += absorbed.size
        survivor.created_at = min(survivor.created_at, absorbed.created_at)
        survivor.last_at = max(survivor.last_at, absorbed.last_at)
        del self.groups[absorbed.key]
        del self._by_gid[absorbed.gid]
        self._alias[absorbed.key] = survivor.key
        for k, v in self._alias.items():
            if v == absorbed.key:
                self._alias[k] = survivor.key
