"""Token buckets per key (a client's network) in bounded memory, evicting the least useful bucket first."""

from __future__ import annotations

import heapq


class TokenBuckets:
    """`rate_per_min` takes a minute per key, refilled continuously; at most `max_buckets` keys are kept.

    A full bucket is the same as none, so over the cap the bucket that is (or will be) full again
    soonest is dropped first: long-refilled ones cost nothing, and a key that was refused recently
    keeps its empty bucket the longest. Never all at once: a flood of new keys cannot reset the
    limit of an abuser (issue 18: 100,050 form posts from distinct addresses cleared every bucket).
    """

    def __init__(self, rate_per_min: float, *, max_buckets: int = 100_000) -> None:
        self.rate_per_min = float(rate_per_min)
        self.max_buckets = max_buckets
        self._buckets: dict[str, tuple[float, float, float]] = {}  # key → (tokens, last take, full again at)
        self._full_at: list[tuple[float, str]] = []  # heap; an entry is stale when the bucket moved on since

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> bool:
        """Take one token from `key`'s bucket at monotonic time `now`; False when it has none left."""
        rate = self.rate_per_min
        tokens, last, _ = self._buckets.get(key, (rate, now, now))
        tokens = min(rate, tokens + (now - last) * rate / 60.0)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        full_at = now + (rate - tokens) * 60.0 / rate
        self._buckets[key] = (tokens, now, full_at)
        heapq.heappush(self._full_at, (full_at, key))
        self._evict()
        return allowed

    def _evict(self) -> None:
        while len(self._buckets) > self.max_buckets:
            full_at, key = heapq.heappop(self._full_at)
            bucket = self._buckets.get(key)
            if bucket is not None and bucket[2] == full_at:
                del self._buckets[key]
        if len(self._full_at) > 2 * len(self._buckets) + 1024:  # stale entries of keys that took again
            self._full_at = [(full_at, key) for key, (_, _, full_at) in self._buckets.items()]
            heapq.heapify(self._full_at)
