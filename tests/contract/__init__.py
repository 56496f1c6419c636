"""One contract suite run against every store: SQLite in tmp_path and PostgreSQL on loopback."""
