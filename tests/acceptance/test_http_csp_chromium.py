"""The Content-Security-Policy as Chromium applies it to the real pages: nothing they use is blocked, and the
report form's honeypot stays hidden (its inline style is allowed by hash). A policy without that hash is
shown to move the honeypot on screen, so the check can fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from statusd.app import build_app
from statusd.web import headers
from tests.support.http_browser import CHROMIUM, chromium_page
from tests.support.reports import config

pytestmark = [pytest.mark.chromium,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]


async def _serve(app: web.Application) -> TestServer:
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


async def test_the_pages_load_under_the_policy_without_a_violation_and_the_honeypot_stays_hidden(
        tmp_path: Path) -> None:
    server = await _serve(build_app(config(tmp_path), run_probes=False, run_worker=False))
    try:
        async with asyncio.timeout(90), chromium_page(tmp_path / "chromium") as page:
            for path in ("/", "/report"):
                await page.open(str(server.make_url(path)))
                assert [t for t in page.console() if "Content Security Policy" in t] == [], path
            assert await page.left_edge("#website") < -1000  # off screen, as its inline style says
    finally:
        await server.close()


async def test_without_the_hash_chromium_blocks_the_inline_style_and_the_honeypot_shows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    without_hash = headers.CONTENT_SECURITY_POLICY.replace(headers._style_hash(headers.INLINE_STYLE_ATTRIBUTES[0]), "")
    monkeypatch.setitem(headers.HTML_HEADERS, "Content-Security-Policy", without_hash)
    server = await _serve(build_app(config(tmp_path), run_probes=False, run_worker=False))
    try:
        async with asyncio.timeout(90), chromium_page(tmp_path / "chromium") as page:
            await page.open(str(server.make_url("/report")))
            assert await page.left_edge("#website") >= 0
            assert any("Content Security Policy" in t for t in page.console())
    finally:
        await server.close()
