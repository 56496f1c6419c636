"""The public `/report` form: a visitor's report, rate-limited per address, with a honeypot against bots.

The page's HTML is in templates/ (report_form.html, report_reply.html), rendered with
autoescape and shown in the status page's layout; the report goes through the same validation
(statusd.reports.validation) and group commit (statusd.reports.pipeline) as the API's.
"""

from __future__ import annotations

import codecs
import html
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

import jinja2
from aiohttp import web
from markupsafe import Markup

from statusd.api.routes import WriteApi
from statusd.core.errors import ValidationError
from statusd.reports.pipeline import ReportPipeline
from statusd.reports.rate_limit import TokenBuckets
from statusd.reports.validation import IntakeLimits, ReportValidator
from statusd.web.body import UnsupportedCoding, content_coding, read_body

#: A page in the status page's layout: (heading, body HTML, status) → response (StatusPage.simple_page).
RenderPage = Callable[[str, str, int], web.Response]


class FormObserver(Protocol):
    """What the form reports (statusd.metrics.Metrics implements it)."""

    def report_form_refusal(self, reason: str) -> None: ...


class ReportForm:
    """`GET /report` shows the form; `POST /report` takes a visitor's report into the pipeline."""

    def __init__(self, validator: ReportValidator, pipeline: ReportPipeline, observer: FormObserver, *,
                 components: Mapping[str, str], limits: IntakeLimits = IntakeLimits(),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.validator = validator
        self.pipeline = pipeline
        self.observer = observer
        self.components = dict(components)  # id → display name
        self.limits = limits
        self._monotonic = monotonic  # the rate limit's clock: seconds that never go back
        self._buckets = TokenBuckets(limits.form_rate_per_min)
        self._templates = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                                             autoescape=True, undefined=jinja2.StrictUndefined, finalize=_escaped)
        self._render_page: RenderPage | None = None

    def add_routes(self, app: web.Application, api: WriteApi) -> None:
        """The form's two routes, its pages in the layout `api` renders."""
        self._render_page = api.render_page
        app.router.add_get("/report", self.form)
        app.router.add_post("/report", self.submit_form)

    def _render(self, heading: str, template: str, status: int, **context: Any) -> web.Response:
        assert self._render_page is not None, "ReportForm.add_routes was not called"
        return self._render_page(heading, self._templates.get_template(template).render(**context), status)

    def _reply(self, heading: str, message: str, status: int, *, home: bool = False) -> web.Response:
        return self._render(heading, "report_reply.html", status, field=None, message=message, home=home)

    async def form(self, request: web.Request) -> web.Response:
        """The empty form: text, component, and the e-mail field when a notifier can answer there."""
        return self._render("Report a problem", "report_form.html", 200, max_text_chars=self.limits.max_text_chars,
                            email=bool(self.limits.form_notifier), components=list(self.components.items()))

    async def submit_form(self, request: web.Request) -> web.Response:
        """A visitor's report: rate-limited per address, size-limited, with a honeypot against bots."""
        if not self._allow(request.remote or "unknown"):
            self.observer.report_form_refusal("rate_limited")
            return self._reply("Too many reports", "Thank you — we already have your reports. Please try again "
                               "in a few minutes.", 429)
        try:
            form = await _form_fields(request)
        except ValidationError as exc:
            return self._form_error(exc.field, exc.message, exc.status)
        if form.get("website"):  # the hidden honeypot: people leave it empty, bots fill it in
            self.observer.report_form_refusal("honeypot")
            return self._reply("Thank you", "Thank you for your report.", 200)
        files = [name for name, value in form.items() if not isinstance(value, str)]
        if files:
            return self._form_error(files[0], "must be text, not a file")
        nul = [name for name, value in form.items() if "\0" in value]
        if nul:  # as in a JSON body (statusd.core.json_body): PostgreSQL's text cannot hold it
            return self._form_error(nul[0], "contains a NUL character")
        data: dict[str, Any] = {"client_id": f"form:{request.remote or 'unknown'}", "channel": "form",
                                "text": str(form.get("text", ""))}
        email = str(form.get("email", "")).strip()
        if email and self.limits.form_notifier:
            data["client_id"] = f"form:{email.lower()}"
            data["contact"] = {"notifier": self.limits.form_notifier, "address": email}
        component = str(form.get("component", "")).strip()
        if component:
            data["tags"] = {"component": component}
        try:
            report = self.validator.parse(data, "", "form")
        except ValidationError as exc:
            # The form's own field names: the e-mail address is also the client id.
            field = {"contact.address": "email", "client_id": "email", "tags.component": "component"}
            return self._form_error(field.get(exc.field, exc.field), exc.message)
        await self.pipeline.ingest([report])
        kept = " We will e-mail you about it." if "contact" in data else ""
        return self._reply("Thank you", f"Thank you — your report reached our team.{kept}", 200, home=True)

    def _form_error(self, field: str, message: str, status: int = 400) -> web.Response:
        self.observer.report_form_refusal("invalid")
        return self._render("Please check your report", "report_reply.html", status, field=field, message=message,
                            home=False)

    def _allow(self, remote: str) -> bool:
        """A token bucket per address: `form_rate_per_min` reports a minute, refilled continuously."""
        return self._buckets.take(remote, self._monotonic())  # bounded memory, oldest-first eviction


_FORM_CHARSETS = {"utf-8", "ascii", "iso8859-1", "cp1252"}  # codec names (codecs.lookup) a form may arrive in


def _escaped(value: Any) -> Markup:
    """Every value as html.escape writes it (`'` as &#x27;), as these pages always had, not markupsafe's &#39;."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


async def _form_fields(request: web.Request) -> Mapping[str, Any]:
    """The form's fields; text that is not valid in its charset is refused, naming the field.

    aiohttp decodes a URL-encoded body leniently (a percent-encoded invalid byte becomes U+FFFD,
    a raw one fails with a traceback), so that form is decoded here, strictly.
    """
    if request.content_type not in ("application/x-www-form-urlencoded", ""):
        if content_coding(request) != "identity":
            raise UnsupportedCoding("Content-Encoding", "a multipart form is read as it is sent: send it without one")
        try:
            return await request.post()
        except (UnicodeError, LookupError) as exc:
            raise ValidationError("body", f"could not be decoded: {exc}") from None
        except web.HTTPException:  # over max_body_bytes: 413
            raise
        except Exception as exc:  # noqa: BLE001 - aiohttp's multipart reader: a part without a name, bad base64...
            raise ValidationError("body", f"is not a multipart form statusd can read: {exc}") from None
    charset = request.charset or "utf-8"
    try:
        known = codecs.lookup(charset).name
    except LookupError:
        known = ""
    if known not in _FORM_CHARSETS:  # e.g. utf-7 or unicode_escape, which decode to lone surrogates
        raise ValidationError("body", f"charset {charset!r} is not supported (utf-8, iso-8859-1 or windows-1252)")
    fields: dict[str, str] = {}
    for pair in (await read_body(request, request.client_max_size, "[server] max_body_bytes")).split(b"&"):
        if not pair.strip():
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        try:
            name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode(charset)
        except UnicodeDecodeError:
            raise ValidationError("body", f"a field name is not valid {charset}") from None
        try:
            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode(charset)
        except UnicodeDecodeError:
            raise ValidationError(name, f"is not valid {charset} text") from None
        fields.setdefault(name, value)  # the first of a repeated field, as aiohttp's MultiDict.get gives
    return fields
