"""The one thing a repository holds: statements on the connection of its unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from statusd.store.dialect import Dialect


class Row(Protocol):
    """A result row, read by column name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Session(Protocol):
    """Statements, written with `?` placeholders, on the one connection of a unit of work."""

    dialect: Dialect

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Every row the statement returns."""
        ...

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row the statement returns, or None."""
        ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement; returns how many rows it changed."""
        ...

    async def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters, in one round trip where the driver allows."""
        ...


class Repo:
    """A repository over one session."""

    def __init__(self, db: Session) -> None:
        self.db = db
        self.dialect = db.dialect
