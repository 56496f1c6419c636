"""Stores behind the repository protocols of `statusd.core.protocols`.

The repositories are written once in SQL (`repos/`) over a small dialect layer (`dialect.py`);
`sqlite.py` and `postgres.py` hold what only one database has: its connections, transactions,
locking and migrations runner. Migrations are numbered per dialect in `migrations/<dialect>/`.
"""

from __future__ import annotations

from importlib import resources


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """Numbered migrations of one dialect as (version, name, sql), in order."""
    folder = resources.files("statusd.store") / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)
