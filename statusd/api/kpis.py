"""/api/v1/kpis: how fast support acknowledged, first spoke publicly and resolved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp import web

from statusd.core.clock import Clock
from statusd.core.protocols import Store
from statusd.web.auth import READ, TokenAuth
from statusd.web.fields import query_int


class KpisApi:
    """The KPI handler: medians and 90th percentiles over recent incidents, per impact and source."""

    def __init__(self, store: Store, clock: Clock, auth: TokenAuth) -> None:
        self.store = store
        self.clock = clock
        self.auth = auth

    async def kpis(self, request: web.Request) -> web.Response:
        """Support KPIs over incidents opened in the last `days` (default 30): per impact and source."""
        self.auth.authorize(request, READ)
        days = query_int(request, "days", 30, 1, 3650)
        now = self.clock.now()
        async with self.store.read() as r:
            incidents = [i for i in await r.incidents.list_recent(now - timedelta(days=days), limit=10_000)
                         if i.opened_at >= now - timedelta(days=days)]
        out: dict[str, Any] = {"days": days, "incidents": len(incidents), "by_impact": {}, "by_source": {}}
        for i in incidents:
            out["by_impact"][i.impact.value] = out["by_impact"].get(i.impact.value, 0) + 1
            out["by_source"][i.source] = out["by_source"].get(i.source, 0) + 1
        for kpi in ("time_to_acknowledge_s", "time_to_first_public_update_s", "time_to_resolve_s"):
            values = sorted(v for i in incidents if (v := i.kpis()[kpi]) is not None)
            out[kpi] = {"count": len(values), "median": quantile(values, 0.5), "p90": quantile(values, 0.9)}
        return web.json_response(out)


def quantile(values: list[float], q: float) -> float | None:
    """The `q` quantile of sorted `values` (nearest rank, no interpolation); None when there are none."""
    if not values:
        return None
    return values[min(len(values) - 1, int(q * len(values)))]
