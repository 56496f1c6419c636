-- Initial schema: the SQLite 0001_init in PostgreSQL types. Timestamps are timestamptz
-- (microsecond resolution, read back as UTC); JSON documents are jsonb.

CREATE TABLE components (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    grp         text,
    position    integer NOT NULL DEFAULT 0,
    status      text NOT NULL DEFAULT 'operational',
    updated_at  timestamptz
);

CREATE TABLE incidents (
    id                     bigserial PRIMARY KEY,
    title                  text NOT NULL,
    status                 text NOT NULL,
    impact                 text NOT NULL,
    components             jsonb NOT NULL DEFAULT '[]',
    source                 text NOT NULL DEFAULT 'manual',
    dedup_key              text,
    assignee               text,
    acknowledged_at        timestamptz,
    acknowledged_by        text,
    first_public_update_at timestamptz,
    opened_at              timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    resolved_at            timestamptz
);
-- The database itself guarantees one open incident per outage, even across replicas.
CREATE UNIQUE INDEX incidents_open_dedup ON incidents (dedup_key)
    WHERE resolved_at IS NULL AND dedup_key IS NOT NULL;
CREATE INDEX incidents_open ON incidents (opened_at) WHERE resolved_at IS NULL;
CREATE INDEX incidents_opened ON incidents (opened_at);
CREATE INDEX incidents_resolved ON incidents (resolved_at);

CREATE TABLE timeline (
    id          bigserial PRIMARY KEY,
    incident_id bigint NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    body        text NOT NULL DEFAULT '',
    author      text NOT NULL DEFAULT '',
    status      text,
    public      boolean NOT NULL DEFAULT false,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX timeline_incident ON timeline (incident_id, at, id);

CREATE TABLE probe_results (
    id        bigserial PRIMARY KEY,
    probe     text NOT NULL,
    component text,
    at        timestamptz NOT NULL,
    ok        boolean NOT NULL,
    degraded  boolean NOT NULL DEFAULT false,
    latency_s double precision NOT NULL,
    error     text NOT NULL DEFAULT '',
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX probe_results_probe_at ON probe_results (probe, at);
CREATE INDEX probe_results_at ON probe_results (at);

CREATE TABLE subscribers (
    id         bigserial PRIMARY KEY,
    notifier   text NOT NULL,
    target     text NOT NULL,
    components jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL,
    UNIQUE (notifier, target)
);

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    key             text NOT NULL UNIQUE,
    notifier        text NOT NULL,
    recipient       text NOT NULL,
    template        text NOT NULL,
    context         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    lease_until     timestamptz,
    last_error      text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);
-- The due-claim reads pending rows by due time and sending rows by lease expiry; partial
-- indexes keep both small however many sent rows pile up.
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_sending_lease ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_status ON outbox (status);
