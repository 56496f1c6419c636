-- Initial schema. Timestamps are ISO-8601 UTC text with microseconds, so they sort as text.

CREATE TABLE components (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    grp         TEXT,
    position    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'operational',
    updated_at  TEXT
);

CREATE TABLE incidents (
    id                     INTEGER PRIMARY KEY AUTOINCREMENT,
    title                  TEXT NOT NULL,
    status                 TEXT NOT NULL,
    impact                 TEXT NOT NULL,
    components             TEXT NOT NULL DEFAULT '[]',
    source                 TEXT NOT NULL DEFAULT 'manual',
    dedup_key              TEXT,
    assignee               TEXT,
    acknowledged_at        TEXT,
    acknowledged_by        TEXT,
    first_public_update_at TEXT,
    opened_at              TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    resolved_at            TEXT
);
-- The database itself guarantees one open incident per outage.
CREATE UNIQUE INDEX incidents_open_dedup ON incidents (dedup_key)
    WHERE resolved_at IS NULL AND dedup_key IS NOT NULL;
CREATE INDEX incidents_open ON incidents (resolved_at, opened_at);

CREATE TABLE timeline (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    body        TEXT NOT NULL DEFAULT '',
    author      TEXT NOT NULL DEFAULT '',
    status      TEXT,
    public      INTEGER NOT NULL DEFAULT 0,
    data        TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_incident ON timeline (incident_id, id);

CREATE TABLE probe_results (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    probe     TEXT NOT NULL,
    component TEXT,
    at        TEXT NOT NULL,
    ok        INTEGER NOT NULL,
    degraded  INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL,
    error     TEXT NOT NULL DEFAULT '',
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX probe_results_probe_at ON probe_results (probe, at);
CREATE INDEX probe_results_at ON probe_results (at);

CREATE TABLE subscribers (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    notifier   TEXT NOT NULL,
    target     TEXT NOT NULL,
    components TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    UNIQUE (notifier, target)
);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    notifier        TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    template        TEXT NOT NULL,
    context         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    sent_at         TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
