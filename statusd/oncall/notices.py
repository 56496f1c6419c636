"""Shift notices: each engineer hears before their shift starts.

Nothing is remembered between runs: every minute the upcoming shifts are recomputed from
the schedules and a notice is enqueued for each shift starting within its notice window,
under a key naming the schedule, person and shift start — so a restart, or two replicas,
never send one twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from statusd.core.clock import Clock
from statusd.core.model import OutboxMessage, Person
from statusd.core.protocols import Store
from statusd.oncall.schedule import Schedule

log = logging.getLogger(__name__)


class ShiftNotices:
    """Enqueues a notice to each person `notice_s[schedule]` seconds before their shift."""

    def __init__(self, store: Store, clock: Clock, schedules: Mapping[str, Schedule], notice_s: Mapping[str, float],
                 people: Mapping[str, Person], page_url: str, *, wake: object = None) -> None:
        self.store = store
        self.clock = clock
        self.schedules = dict(schedules)
        self.notice_s = dict(notice_s)
        self.people = dict(people)
        self.page_url = page_url
        self.wake = wake  # called after enqueueing, so the outbox worker looks at once

    async def send_due(self) -> int:
        """Enqueue notices for shifts starting within their window from now; returns how many were new."""
        now = self.clock.now()
        messages = []
        for name, schedule in self.schedules.items():
            window = self.notice_s.get(name, 0)
            if window <= 0:
                continue
            # A shift that starts within the window and is not already running.
            for shift in schedule.shifts(now, now + timedelta(seconds=window) + timedelta(microseconds=1)):
                if shift.person is None or shift.start <= now:
                    continue
                person = self.people.get(shift.person)
                if person is None:
                    continue
                context = {"shift": {"schedule": name, "start": shift.start.isoformat(), "end": shift.end.isoformat(),
                                     "person": person.name},
                           "recipient": {"id": person.id, "name": person.name},
                           "page": {"title": "", "url": self.page_url}}
                messages += [
                    OutboxMessage(key=f"shift:{name}:{person.id}:{shift.start.isoformat()}:{notifier}",
                                  notifier=notifier, recipient=address, template="shift", context=context,
                                  created_at=now)
                    for notifier, address in person.contacts.items()
                ]
        if not messages:
            return 0
        async with self.store.transaction() as tx:
            stored = await tx.outbox.enqueue(messages)
        if stored and callable(self.wake):
            self.wake()
        return stored

    async def run(self, every_s: float = 60.0) -> None:
        """Check every `every_s` seconds until cancelled."""
        while True:
            try:
                await self.send_due()
            except Exception:
                log.exception("shift notices failed; trying again later")
            await self.clock.sleep(every_s)
