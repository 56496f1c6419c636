"""The one JSON error shape of every statusd HTTP answer, and the middleware that gives it to domain errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from statusd.core.errors import Conflict, NotFound, StatusdError, ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, field: str | None, message: str) -> web.Response:
    """`{"error": {"field": ..., "message": ...}}` with `status`; `field` is left out when it is None."""
    body: dict[str, Any] = {"message": message}
    if field is not None:
        body["field"] = field
    return web.json_response({"error": body}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn domain errors into 4xx JSON; never leak a stack trace to a client."""
    try:
        return await handler(request)
    except ValidationError as exc:
        return error_response(exc.status, exc.field, exc.message)
    except NotFound as exc:
        return error_response(404, None, str(exc))
    except Conflict as exc:
        return error_response(409, None, str(exc))
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        field, message = None, exc.reason
        if exc.status == 401:
            field = "Authorization"
        elif exc.status == 413:  # name the limit, so a client knows to send fewer reports per batch
            field, message = "body", f"is larger than {request.client_max_size} bytes ([server] max_body_bytes)"
        response = error_response(exc.status, field, message)
        if "WWW-Authenticate" in exc.headers:
            response.headers["WWW-Authenticate"] = exc.headers["WWW-Authenticate"]
        return response
    except StatusdError as exc:
        return error_response(400, None, str(exc))
    except Exception as exc:
        if isinstance(exc, ConnectionResetError) and (request.transport is None or request.transport.is_closing()):
            # The client hung up, or was cut off for sending its body too slowly (statusd.web.server):
            # nobody is left to answer, and nothing went wrong on our side worth a traceback.
            raise web.HTTPRequestTimeout() from None
        log.exception("unhandled error serving %s %s", request.method, request.path)
        if request.path.startswith("/api/"):
            return error_response(500, None, "internal error; the server log has the details")
        raise web.HTTPInternalServerError(text="Internal error") from None
