"""/api/v1/subscribers: list, add and remove subscribers of components."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from statusd.core.clock import Clock
from statusd.core.errors import NotFound, ValidationError
from statusd.core.model import Subscriber
from statusd.core.protocols import Store
from statusd.web.auth import TokenAuth
from statusd.web.fields import Fields, iso, path_id


def subscriber_json(s: Subscriber) -> dict[str, Any]:
    """A subscriber as the write API shows it."""
    return {"id": s.id, "notifier": s.notifier, "target": s.target, "components": list(s.components),
            "created_at": iso(s.created_at)}


class SubscribersApi:
    """The subscriber handlers (subscribers:write); a target is vetted by its notifier before it is stored."""

    def __init__(self, store: Store, clock: Clock, auth: TokenAuth, notifiers: Mapping[str, Any]) -> None:
        """`notifiers` maps a notifier name to what vets an outsider's target (`check_recipient`): the app passes
        `notifiers.guard.OutsiderTargets`, which refuses loopback, private and other non-public hosts."""
        self.store = store
        self.clock = clock
        self.auth = auth
        self.notifiers = dict(notifiers)

    async def list_subscribers(self, request: web.Request) -> web.Response:
        """GET /api/v1/subscribers."""
        self.auth.authorize(request, "subscribers:write")
        async with self.store.read() as r:
            subscribers = await r.subscribers.list()
        return web.json_response({"subscribers": [subscriber_json(s) for s in subscribers]})

    async def add_subscriber(self, request: web.Request) -> web.Response:
        """POST /api/v1/subscribers: 201 with the subscriber; every component named must exist."""
        self.auth.authorize(request, "subscribers:write")
        body = await Fields.read(request, {"notifier", "target", "components"})
        notifier_name = body.text("notifier", required=True, max_len=100) or ""
        notifier_config = self.notifiers.get(notifier_name)
        if notifier_config is None:
            raise ValidationError("notifier", f"no notifier {notifier_name!r}; configured: "
                                  + (", ".join(sorted(self.notifiers)) or "none"))
        target = body.text("target", required=True, max_len=2000) or ""
        problem = notifier_config.check_recipient(target)
        if problem:
            raise ValidationError("target", problem)
        components = list(dict.fromkeys(body.names("components")))
        async with self.store.transaction() as tx:
            known = {c.id for c in await tx.components.list()}
            for i, cid in enumerate(components):
                if cid not in known:
                    raise ValidationError(f"components[{i}]", f"no component {cid!r}")
            subscriber = await tx.subscribers.add(Subscriber(notifier=notifier_name, target=target,
                                                             components=tuple(components),
                                                             created_at=self.clock.now()))
        return web.json_response({"subscriber": subscriber_json(subscriber)}, status=201)

    async def remove_subscriber(self, request: web.Request) -> web.Response:
        """DELETE /api/v1/subscribers/{id}."""
        self.auth.authorize(request, "subscribers:write")
        subscriber_id = path_id(request, "subscriber")
        async with self.store.transaction() as tx:
            removed = await tx.subscribers.remove(subscriber_id)
        if not removed:
            raise NotFound("subscriber", subscriber_id)
        return web.json_response({"removed": subscriber_id})
