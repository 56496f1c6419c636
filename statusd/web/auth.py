"""Who is calling: API tokens and their scopes, and the shared secrets webhooks present."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web


#: The scope every internal read needs: incidents with their internal timelines, the reports and contact
#: addresses linked to them, on-call schedules and KPIs. No /api/v1 route is open to every token.
READ = "incidents:read"

#: The scopes each scope brings with it; `admin` brings every scope.
IMPLIED: dict[str, frozenset[str]] = {"incidents:write": frozenset({READ})}


def grants(scopes: frozenset[str], scope: str) -> bool:
    """Whether a token with `scopes` may act with `scope`, directly, through `IMPLIED` or as `admin`."""
    return scope in scopes or "admin" in scopes or any(scope in IMPLIED.get(s, ()) for s in scopes)


@dataclass(frozen=True, slots=True)
class Token:
    """An API credential: `name` signs what is posted with it."""

    id: str
    name: str
    secret: str
    scopes: frozenset[str]
    person: str | None = None  # acts as this person when acknowledging or handing over


def same_secret(expected: bytes, presented: str) -> bool:
    """Whether `presented` is `expected`, compared in constant time (any text a client sends is comparable)."""
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header may carry anything.
    return hmac.compare_digest(expected, presented.encode("utf-8", "surrogateescape"))


def unauthorized(reason: str, realm: str = "statusd") -> web.HTTPUnauthorized:
    """A 401 with a Bearer challenge; under /api/ it is answered as JSON naming the Authorization field."""
    return web.HTTPUnauthorized(reason=reason, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})


class TokenAuth:
    """The API tokens: which one a request presents as `Authorization: Bearer …`, and what it may do."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens = list(tokens)

    def authorize(self, request: web.Request, scope: str) -> Token:
        """The token presented; 401 without a valid one, 403 unless it `grants` `scope`."""
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise unauthorized("missing bearer token")
        found = None
        for token in self._tokens:  # compare with every token, in constant time each
            if same_secret(token.secret.encode(), presented.strip()):
                found = token
        if found is None:
            raise unauthorized("invalid token")
        if not grants(found.scopes, scope):
            raise web.HTTPForbidden(reason=f"token lacks the {scope} scope")
        return found


def presented_secret(request: web.Request) -> str | None:
    """The credential from `Authorization` (Bearer, or Basic with it as password), else from `?token=`.

    `?token=` is for senders that cannot set headers; it ends up in proxies' access logs.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return request.query.get("token") or None
    scheme, _, credentials = header.partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer" and credentials:
        return credentials
    if scheme.lower() == "basic" and credentials:
        # Basic auth with the token as password, for senders that only offer user and password.
        try:
            return base64.b64decode(credentials, validate=True).decode("utf-8").partition(":")[2] or None
        except ValueError:  # not base64 (binascii.Error), non-ASCII, or not UTF-8 once decoded
            return None
    return None
