"""The address guard for recipients outsiders chose: refused at subscribe time and again at connect time.

`OutsiderTargets` vets a subscriber's or a report's target before it is stored (a 400 naming the
field). `guarded_connector` makes an aiohttp connector that checks every address it is about to
connect to — each address a name resolves to, and IP literals, which aiohttp never resolves — so a
name that passed the first check and later resolves to 127.0.0.1 (DNS rebinding) is refused too.
Operators' own targets (people's contacts, notifier settings) never go through it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from statusd.core.addresses import AddressPolicy, parse_address


class RefusedAddress(OSError):
    """An address the policy refuses to connect to; its `strerror` says which and why (no URL, no secret)."""

    def __init__(self, why: str) -> None:
        super().__init__(errno.EACCES, f"refused: {why}")


def refused_address(exc: BaseException) -> str | None:
    """Why the guard refused the connection that failed with `exc`, or None when it failed otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RefusedAddress):
            return current.strerror
        os_error = getattr(current, "os_error", None)  # aiohttp's ClientConnectorError keeps it here
        current = os_error if isinstance(os_error, BaseException) else (current.__cause__ or current.__context__)
    return None


class OutsiderTargets:
    """A notifier's config as seen for targets outsiders give: its own checks, then the address policy."""

    def __init__(self, config: Any, policy: AddressPolicy) -> None:
        self.config = config
        self.policy = policy

    def check_recipient(self, recipient: str) -> str | None:
        """Why an outsider may not use `recipient` on this notifier, or None when they may."""
        problem: str | None = self.config.check_recipient(recipient)
        if problem is not None or not getattr(self.config, "recipients_are_hosts", False):
            return problem
        host = self.config.recipient_host(recipient)
        if host is None:
            return "has no host"
        refusal = self.policy.refusal(host)
        return None if refusal is None else f"{refusal}; statusd sends only to public addresses"


class GuardedResolver(AbstractResolver):
    """Resolves through `inner` and keeps only the addresses the policy allows; none left is an error."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        """The allowed addresses of `host`; raises RefusedAddress when it has none."""
        results = await self.inner.resolve(host, port, family)
        allowed, refusals = [], []
        for result in results:
            refusal = _refusal(self.policy, result["host"])
            if refusal is None:
                allowed.append(result)
            else:
                refusals.append(refusal)
        if not allowed:
            raise RefusedAddress(f"{host} resolves to no public address ({'; '.join(refusals) or 'none'})")
        return allowed

    async def close(self) -> None:
        """Close the inner resolver."""
        await self.inner.close()


def guarded_socket_factory(policy: AddressPolicy) -> Callable[[Any], socket.socket]:
    """A socket factory that refuses to make a socket for an address the policy refuses.

    It sees the exact address each connection attempt goes to, IP literals included, which the
    resolver never sees.
    """
    def make_socket(addr_info: Any) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        refusal = _refusal(policy, str(sockaddr[0]))
        if refusal is not None:
            raise RefusedAddress(refusal)
        return socket.socket(family=family, type=type_, proto=proto)

    return make_socket


def guarded_connector(policy: AddressPolicy, *, resolver: AbstractResolver | None = None,
                      **kwargs: Any) -> aiohttp.TCPConnector:
    """A TCPConnector that connects only to addresses `policy` allows (resolved names and literals alike)."""
    return aiohttp.TCPConnector(resolver=GuardedResolver(policy, resolver),
                                socket_factory=guarded_socket_factory(policy), **kwargs)


def _refusal(policy: AddressPolicy, host: str) -> str | None:
    address = parse_address(host)
    if address is None:  # a resolver answers addresses; anything else is not one we can vouch for
        return f"{host} is not an address"
    return policy.address_refusal(address)
