-- Nothing changes here: SQLite's 0005 gives it the indexes PostgreSQL has had since 0001
-- (tests/test_store_migrations.py). Kept so that both dialects number their migrations alike.
SELECT 1;
