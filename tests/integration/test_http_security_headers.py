"""Security headers on real answers of the statusd web application: CSP and framing on HTML, nosniff and
Referrer-Policy on everything, including answers a handler streams itself and aiohttp's own 404."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from statusd.web.application import web_application
from statusd.web.errors import error_response

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = [*ROOT.glob("status_page/templates/*.html"), *ROOT.glob("statusd/*/templates/*.html")]


def _app() -> web.Application:
    app = web_application(1024)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>hi</p>", content_type="text/html")

    async def api(request: web.Request) -> web.Response:
        return error_response(400, "text", "is required")

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: {}\n\n")
        return response

    app.router.add_get("/", page)
    app.router.add_get("/api/v1/thing", api)
    app.router.add_get("/events", stream)
    return app


async def _headers(path: str) -> tuple[int, dict[str, str]]:
    server = TestServer(_app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.make_url(path)) as resp:
            await resp.read()
            return resp.status, dict(resp.headers)
    finally:
        await server.close()


def _directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


async def test_html_answers_carry_a_content_security_policy_that_allows_no_script_and_no_framing() -> None:
    status, headers = await _headers("/")
    assert status == 200
    policy = _directives(headers["Content-Security-Policy"])
    assert policy["default-src"] == ["'none'"] and "script-src" not in policy  # no script at all
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


async def test_every_answer_carries_nosniff_and_a_referrer_policy() -> None:
    for path, expected_status in (("/api/v1/thing", 400), ("/events", 200), ("/no/such/page", 404)):
        status, headers = await _headers(path)
        assert status == expected_status, path
        assert headers.get("X-Content-Type-Options") == "nosniff", path
        assert headers.get("Referrer-Policy") == "strict-origin-when-cross-origin", path
    _status, headers = await _headers("/api/v1/thing")
    assert "Content-Security-Policy" not in headers  # JSON is not a document


async def test_the_policy_allows_every_inline_style_attribute_the_templates_use() -> None:
    """A new `style="..."` in a template would be blocked by the browser: it must be added to the policy."""
    _status, headers = await _headers("/")
    allowed = _directives(headers["Content-Security-Policy"])["style-src"]
    assert TEMPLATES
    for template in TEMPLATES:
        text = template.read_text()
        assert "<script" not in text, f"{template}: the policy allows no script"
        for style in re.findall(r'style="([^"]*)"', text):
            digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in allowed, f"{template}: style={style!r} is not in the policy"
