"""/api/v1/components: set a component's status by hand."""

from __future__ import annotations

from aiohttp import web

from statusd.core.errors import NotFound
from statusd.core.model import ComponentStatus
from statusd.core.protocols import Store
from statusd.incidents.coordinator import Coordinator
from statusd.web.auth import TokenAuth
from statusd.web.fields import Fields


class ComponentsApi:
    """The component handler: a known component's status, set through the coordinator."""

    def __init__(self, store: Store, coordinator: Coordinator, auth: TokenAuth) -> None:
        self.store = store
        self.coordinator = coordinator
        self.auth = auth

    async def set_component(self, request: web.Request) -> web.Response:
        """PUT /api/v1/components/{id} (components:write): `changed` says whether the status was different."""
        self.auth.authorize(request, "components:write")
        body = await Fields.read(request, {"status"})
        status = body.choice("status", ComponentStatus, required=True)
        assert status is not None
        component_id = request.match_info["id"]
        async with self.store.read() as r:
            if await r.components.get(component_id) is None:
                raise NotFound("component", component_id)
        changed = await self.coordinator.set_component_status(component_id, status)
        return web.json_response({"component": {"id": component_id, "status": status.value}, "changed": changed})
