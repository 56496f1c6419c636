"""The aiohttp application every statusd route is added to."""

from __future__ import annotations

from aiohttp import web

from statusd.web.errors import json_errors
from statusd.web.headers import security_headers


def web_application(max_body_bytes: int) -> web.Application:
    """An app with JSON errors, security headers and the body limit, whose bodies are decoded by
    statusd.web.body, not by aiohttp."""
    app = web.Application(middlewares=[json_errors], client_max_size=max_body_bytes,
                          handler_args={"auto_decompress": False})
    app.on_response_prepare.append(security_headers)
    return app
