"""Which open incident each surge belongs to: the one place that knows.

A surge is named by its incident key (the dedup key of the Signal it fired). The pipeline's
stage three opens or joins incidents for signals and links reports to them; a restart catches
up on surges still active. All of them ask here, so there is one map, kept as small as the open
incidents, and one rule: a remembered incident while it is open, else the open incident with
the surge's dedup key (after a restart, or when another replica opened it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from statusd.core.protocols import Store
from statusd.incidents.merging import merged_end

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OpenIncidents:
    """The open incidents' ids and dedup keys, read after `handled` signals had been handled here."""

    keys: dict[int, str | None]
    handled: int


class SurgeIncidents:
    """Surge (incident key) → open incident id, remembered from signals and found by dedup key."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._by_key: dict[str, int] = {}
        # Incidents signals opened or joined, numbered in order: a read of the open incidents taken
        # during detection may predate the latest of them.
        self._handled: dict[int, tuple[int, str | None]] = {}  # incident id → (number, dedup key)
        self._handled_count = 0

    def handled(self, incident_id: int, dedup_key: str | None, surge_key: str | None) -> None:
        """A signal opened or joined this incident just now; `surge_key` (if any) belongs to it from now on."""
        self._handled_count += 1
        self._handled[incident_id] = (self._handled_count, dedup_key)
        if surge_key:
            self._by_key[surge_key] = incident_id

    def remember(self, surge_key: str, incident_id: int) -> None:
        """The surge belongs to this incident (found again after a restart)."""
        self._by_key[surge_key] = incident_id

    async def read_open(self) -> OpenIncidents | None:
        """Every open incident's id and dedup key (few, even in a flood); None if the read failed."""
        handled = self._handled_count  # before the read: what was handled until now, it sees
        try:
            async with self.store.read() as r:
                return OpenIncidents(await r.incidents.open_keys(), handled)
        except Exception:  # noqa: BLE001 - `incidents_for` reads them again
            log.exception("reading the open incidents failed")
            return None

    def still_open(self, read: OpenIncidents | None) -> dict[int, str | None] | None:
        """The incidents open at `read`, plus those signals opened or joined since it began."""
        if read is None:
            return None
        self._handled = {i: handled for i, handled in self._handled.items() if handled[0] > read.handled}
        return {**read.keys, **{i: key for i, (_, key) in self._handled.items()}}

    async def incidents_for(self, keys: Iterable[str], open_ids: dict[int, str | None] | None) -> dict[str, int]:
        """The open incident each surge belongs to: remembered, or found by its dedup key (e.g. after a restart).

        `open_ids`: the open incidents' ids and dedup keys, read here if None.
        """
        keys = list(keys)
        if not keys:
            return {}
        if open_ids is None:
            async with self.store.read() as r:
                open_ids = await r.incidents.open_keys()
        by_key = {key: incident_id for incident_id, key in open_ids.items() if key}
        closed = {k: v for k, v in self._by_key.items() if v not in open_ids}
        # Forget surges whose incident was resolved, so the map stays as small as the open incidents;
        # one merged into another follows it there (looked up once, when it closes).
        self._by_key = {k: v for k, v in self._by_key.items() if v in open_ids}
        if closed:
            self._by_key.update(await self._merged_into(closed, open_ids))
        found: dict[str, int] = {}
        for key in keys:
            known = self._by_key.get(key)
            incident_id = known if known in open_ids else by_key.get(key)
            if incident_id is not None:
                self._by_key[key] = found[key] = incident_id
        return found

    async def _merged_into(self, closed: dict[str, int], open_ids: dict[int, str | None]) -> dict[str, int]:
        """Surge → the open incident its closed incident was merged into (in turn, perhaps); others left out."""
        found: dict[str, int] = {}
        try:
            async with self.store.read() as r:
                for key, incident_id in closed.items():
                    incident = await r.incidents.get(incident_id)
                    target = await merged_end(r, incident) if incident is not None else None
                    if target is not None and target in open_ids:
                        found[key] = target
        except Exception:  # noqa: BLE001 - the surge's next signal finds the incident it joined
            log.exception("reading where merged incidents went failed")
        return found
