"""Time for domain code: a real clock in production, a fake one that tests move by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta
from typing import Protocol


#: Times statusd accepts from outside (API, config, replay files). Far enough from datetime's own
#: limits (years 1 and 9999) that a time zone's offset, a window or a year added still fits.
FIRST_YEAR, LAST_YEAR = 1970, 9000


def supported(at: datetime) -> bool:
    """Whether `at` lies in the years statusd accepts from outside (FIRST_YEAR to LAST_YEAR)."""
    return FIRST_YEAR <= at.year <= LAST_YEAR


class Clock(Protocol):
    """Source of the current UTC time and of waiting; domain code never reads time any other way."""

    def now(self) -> datetime:
        """The current time, UTC-aware."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait for `seconds` of this clock's time."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """The current wall-clock time, UTC-aware."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time (none when not positive)."""
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when a test calls `advance`; sleepers wake in deadline order."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        """The fake time: where `advance` or `set` left it."""
        return self._now

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting for this clock to advance (a test's barrier before `advance`)."""
        return sum(1 for _, _, fut in self._sleepers if not fut.done())

    async def sleep(self, seconds: float) -> None:
        """Wait until `advance` moves the clock `seconds` on; a non-positive wait only yields once."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + timedelta(seconds=seconds), next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper whose deadline has come, in order."""
        target = self._now + timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            # Let the woken task run before the next deadline, so chains of timers behave.
            for _ in range(5):
                await asyncio.sleep(0)
        self._now = target
        for _ in range(5):
            await asyncio.sleep(0)

    def set(self, when: datetime) -> None:
        """Jump to `when` without waking anyone (for pure-function tests)."""
        self._now = when


async def sleep_until_due_or_woken(clock: Clock, due: datetime | None, wakeup: asyncio.Event,
                                   max_s: float) -> None:
    """Sleep on `clock` until `due` (at most `max_s`), or until `wakeup` is set — whichever comes first."""
    delay = max_s if due is None else (due - clock.now()).total_seconds()
    delay = max(0.0, min(delay, max_s))
    if delay == 0:
        return
    sleeper = asyncio.ensure_future(clock.sleep(delay))
    waker = asyncio.ensure_future(wakeup.wait())
    try:
        await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waker):
            task.cancel()
        await asyncio.gather(sleeper, waker, return_exceptions=True)
