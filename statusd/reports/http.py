"""Customer reports over HTTP: the token API for helpdesks, chat and phone systems (`reports:write`).

A request is validated whole (statusd.reports.validation) before anything is stored, then
handed to the group commit (statusd.reports.pipeline); the answer says, per report, whether it
was a duplicate and which incident it joined.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from statusd.api.routes import WriteApi
from statusd.core.errors import NotFound, ValidationError
from statusd.web.auth import Token
from statusd.web.fields import Fields, path_id
from statusd.core.protocols import Store
from statusd.reports.pipeline import ReportPipeline
from statusd.reports.validation import REPORT_FIELDS, IntakeLimits, ReportValidator


class ReportApi:
    """`/api/v1/reports`, its batch form, and the reports linked to an incident."""

    def __init__(self, store: Store, validator: ReportValidator, pipeline: ReportPipeline,
                 limits: IntakeLimits = IntakeLimits()) -> None:
        self.store = store
        self.validator = validator
        self.pipeline = pipeline
        self.limits = limits
        self._api: WriteApi | None = None

    def add_routes(self, app: web.Application, api: WriteApi) -> None:
        """The token API, authorised by `api`."""
        self._api = api
        app.router.add_post("/api/v1/reports", self.post_report)
        app.router.add_post("/api/v1/reports/batch", self.post_batch)
        app.router.add_get("/api/v1/incidents/{id}/reports", self.incident_reports)

    @property
    def api(self) -> WriteApi:
        """The write API that authorises requests (set by `add_routes`)."""
        assert self._api is not None, "ReportApi.add_routes was not called"
        return self._api

    def _token(self, request: web.Request) -> Token:
        return self.api.authorize(request, "reports:write")

    async def post_report(self, request: web.Request) -> web.Response:
        """One report: 202 when stored, 200 when it repeats a stored one."""
        token = self._token(request)
        body = await Fields.read(request, REPORT_FIELDS)
        report = self.validator.parse(body.data, "", f"api:{token.id}")
        [result] = await self.pipeline.ingest([report])
        return web.json_response({"report": result}, status=200 if result["duplicate"] else 202)

    async def post_batch(self, request: web.Request) -> web.Response:
        """Up to `max_batch` reports, refused whole when one is invalid (naming it)."""
        token = self._token(request)
        body = await Fields.read(request, {"reports"})
        items = body.data.get("reports")
        if not isinstance(items, list) or not items:
            raise ValidationError("reports", "must be a non-empty list of reports")
        if len(items) > self.limits.max_batch:
            raise ValidationError("reports", f"at most {self.limits.max_batch} reports per batch")
        reports = [self.validator.parse(item, f"reports[{i}]", f"api:{token.id}") for i, item in enumerate(items)]
        seen: dict[str, int] = {}
        for i, report in enumerate(reports):
            if report.external_id is not None:
                if report.external_id in seen:
                    raise ValidationError(f"reports[{i}].external_id",
                                          f"repeats reports[{seen[report.external_id]}].external_id")
                seen[report.external_id] = i
        results = await self.pipeline.ingest(reports)
        return web.json_response({"reports": results}, status=202)

    async def incident_reports(self, request: web.Request) -> web.Response:
        """The reports linked to an incident and the distinct clients affected."""
        self.api.authorize(request, "incidents:read")
        incident_id = path_id(request)
        async with self.store.read() as r:
            if await r.incidents.get(incident_id) is None:
                raise NotFound("incident", incident_id)
            linked = await r.reports.for_incident(incident_id)
        clients: dict[str, dict[str, Any]] = {}
        for report in linked:
            entry = clients.setdefault(report.client_id, {"client_id": report.client_id, "reports": 0,
                                                          "contacts": [], "first_report_at": report.received_at})
            entry["reports"] += 1
            if report.contact and list(report.contact) not in entry["contacts"]:
                entry["contacts"].append(list(report.contact))
        return web.json_response({
            "incident_id": incident_id,
            "clients": [{**c, "first_report_at": c["first_report_at"].isoformat()} for c in clients.values()],
            "reports": [{"id": r.id, "client_id": r.client_id, "channel": r.channel, "text": r.text,
                         "received_at": r.received_at.isoformat(), "tags": r.tags, "external_id": r.external_id,
                         "ticket_url": r.ticket_url} for r in linked],
        })
