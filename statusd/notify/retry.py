"""When a failed delivery is tried again: exponential backoff with jitter, and a last attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: initial, doubled per attempt, capped; jitter spreads retries of a burst."""

    max_attempts: int = 8
    initial_s: float = 5.0
    max_s: float = 900.0
    jitter: float = 0.2

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        """The wait before retry `attempt`: jitter spreads it upward, and the cap (`backoff_max_s`) holds after it."""
        base = self.initial_s * 2 ** min(max(0, attempt - 1), 64)
        return min(self.max_s, base * (1 + self.jitter * rng.random()))

    def retries(self, attempts: int, retryable: bool) -> bool:
        """Whether a failure after `attempts` attempts is tried again: only a retryable one, and not past the last."""
        return retryable and attempts < self.max_attempts
