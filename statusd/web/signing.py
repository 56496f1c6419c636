"""Signed links: one-click acknowledgement from an alert, and private iCal feed URLs."""

from __future__ import annotations

import hashlib
import hmac


class Signer:
    """HMAC-SHA256 signatures over short purpose-tagged strings; a link is valid only for what it names."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def sign(self, purpose: str, *parts: object) -> str:
        """The signature of `parts` for `purpose` (32 hex digits)."""
        message = ":".join([purpose, *map(str, parts)]).encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def verify(self, signature: str, purpose: str, *parts: object) -> bool:
        """Whether `signature` is sign(purpose, *parts), compared in constant time."""
        # As bytes: compare_digest refuses str with non-ASCII characters, and a link may carry anything.
        return hmac.compare_digest(self.sign(purpose, *parts).encode(), signature.encode("utf-8", "surrogateescape"))
