"""`[server]` and `[store]`: where statusd listens and where it keeps its data."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from statusd.core.schema import Problems, Secret, http_url, non_negative, positive


@dataclass(frozen=True)
class ServerConfig:
    """`[server]`: where statusd listens and the URL visitors reach it by; `secret_key` signs links."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # how visitors reach statusd; defaults to http://host:port
    max_body_bytes: int = 1_048_576
    secret_key: Secret | None = None  # signs one-click acknowledge links and iCal feed URLs
    metrics_token: Secret | None = None  # when set, /metrics answers only `Authorization: Bearer <token>`
    # A client that takes longer to send a request is disconnected (slow clients must not hold connections).
    header_timeout_s: float = 10.0  # request line and headers, from their first byte
    body_timeout_s: float = 60.0  # the body, from the end of the headers
    keepalive_timeout_s: float = 75.0  # an idle connection between requests
    max_connections: int = 0  # open connections at most; 0: 3/4 of the open-file limit (ulimit -n)

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems: Problems = []
        if not 0 <= self.port <= 65535:
            problems.append(("port", "must be between 0 and 65535"))
        if self.public_url and not http_url(self.public_url):
            problems.append(("public_url", "expected an absolute http:// or https:// URL such as https://status.example.com"))
        if self.secret_key is not None and len(self.secret_key.reveal()) < 16:
            problems.append(("secret_key", "must be at least 16 characters"))
        if self.metrics_token is not None and len(self.metrics_token.reveal()) < 16:
            problems.append(("metrics_token", "must be at least 16 characters"))
        problems += positive(self.max_body_bytes, "max_body_bytes")
        for key in ("header_timeout_s", "body_timeout_s", "keepalive_timeout_s"):
            problems += positive(getattr(self, key), key, at_most=86_400)
        return problems + non_negative(self.max_connections, "max_connections", at_most=10_000_000)

    @property
    def base_url(self) -> str:
        """The public base URL without a trailing slash: `public_url`, else http://host:port."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class StoreConfig:
    """`[store]`: SQLite at `path`, or PostgreSQL at `url`, and how long raw probe results are kept."""

    path: str = "statusd.db"  # SQLite file; relative paths are relative to the config file
    # PostgreSQL instead of SQLite: "postgresql://user:password@host:5432/database" (asyncpg's DSN);
    # a Secret, because it may carry the password.
    url: Secret | None = None
    probe_retention_days: int = 7

    def check(self) -> Problems:
        """Problems with these values as (key, message) pairs; empty when the section is valid."""
        problems = positive(self.probe_retention_days, "probe_retention_days")
        if self.url is not None:
            if not self.url.reveal().startswith(("postgresql://", "postgres://")):
                problems.append(("url", "must be a postgresql:// URL (leave it out for SQLite at store.path)"))
            elif importlib.util.find_spec("asyncpg") is None:
                problems.append(("url", "PostgreSQL needs the postgres extra: pip install 'statusd[postgres]'"))
        return problems

