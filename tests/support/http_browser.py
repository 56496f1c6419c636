"""A headless Chromium page over the DevTools protocol on loopback, for checks of what a browser really applies."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class Page:
    """One page of a headless Chromium: navigate, then read its DOM and layout; console entries are kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._ws.send_json({"id": message_id, "method": method, "params": params})
        while True:
            data = await self._receive()
            if data.get("id") == message_id:
                if "error" in data:
                    raise AssertionError(f"{method}: {data['error']}")
                result: dict[str, Any] = data["result"]
                return result
            self.events.append(data)

    async def open(self, url: str) -> None:
        """Navigate to `url` and wait for its load event."""
        self.events.clear()
        await self.call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(await self._receive())

    async def dom(self, url: str) -> str:
        """The DOM of `url` once its load event fired."""
        await self.open(url)
        root = (await self.call("DOM.getDocument", depth=-1))["root"]
        html: str = (await self.call("DOM.getOuterHTML", nodeId=root["nodeId"]))["outerHTML"]
        return html

    async def left_edge(self, selector: str) -> float:
        """The x coordinate of the element's border box on the page (negative: pushed off screen)."""
        root = (await self.call("DOM.getDocument", depth=-1))["root"]
        node = (await self.call("DOM.querySelector", nodeId=root["nodeId"], selector=selector))["nodeId"]
        assert node, f"no {selector} on the page"
        border = (await self.call("DOM.getBoxModel", nodeId=node))["model"]["border"]
        return float(min(border[0::2]))

    def console(self) -> list[str]:
        """The console and log entries the page produced (a CSP violation is one)."""
        return [e["params"]["entry"]["text"] for e in self.events if e.get("method") == "Log.entryAdded"]

    async def _receive(self) -> dict[str, Any]:
        msg = await self._ws.receive()
        assert msg.type is aiohttp.WSMsgType.TEXT, f"DevTools connection ended: {msg}"
        data: dict[str, Any] = json.loads(msg.data)
        return data


@asynccontextmanager
async def chromium_page(profile: Path) -> AsyncIterator[Page]:
    """A headless Chromium page (scripts off, as many visitors have them); the browser is stopped afterwards."""
    proc = await asyncio.create_subprocess_exec(
        str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "HOME": str(profile)})
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
        for _ in range(300):
            if port_file.exists() and "\n" in port_file.read_text():
                break
            if proc.returncode is not None:
                pytest.fail(f"chromium exited with {proc.returncode} before it listened")
            await asyncio.sleep(0.1)
        else:
            pytest.fail("chromium did not open its DevTools port within 30 s")
        port = int(port_file.read_text().splitlines()[0])
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
            async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
                targets = await resp.json()
            ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with http.ws_connect(ws_url, max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Emulation.setScriptExecutionDisabled", value=True)
                await page.call("Page.enable")
                await page.call("Log.enable")
                yield page
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
