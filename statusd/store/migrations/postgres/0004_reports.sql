-- Customer reports, and which incident each one is linked to.

CREATE TABLE reports (
    id               BIGSERIAL PRIMARY KEY,
    source           TEXT NOT NULL,
    external_id      TEXT,
    client_id        TEXT NOT NULL,
    channel          TEXT NOT NULL DEFAULT 'api',
    text             TEXT NOT NULL,
    tags             JSONB NOT NULL DEFAULT '{}',
    contact_notifier TEXT,
    contact_address  TEXT,
    ticket_url       TEXT,
    received_at      TIMESTAMPTZ NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    incident_id      BIGINT REFERENCES incidents (id)
);
CREATE UNIQUE INDEX reports_external ON reports (source, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX reports_incident ON reports (incident_id);
CREATE INDEX reports_received ON reports (received_at);
