-- Ownership, escalation snapshot, postmortems, merges; and the timers every restart rebuilds from.

ALTER TABLE incidents ADD COLUMN commander TEXT;
ALTER TABLE incidents ADD COLUMN comms TEXT;
ALTER TABLE incidents ADD COLUMN escalation TEXT NOT NULL DEFAULT '{}';
ALTER TABLE incidents ADD COLUMN handoff TEXT;
ALTER TABLE incidents ADD COLUMN last_public_update_at TEXT;
ALTER TABLE incidents ADD COLUMN postmortem TEXT;
ALTER TABLE incidents ADD COLUMN postmortem_at TEXT;
ALTER TABLE incidents ADD COLUMN merged_into INTEGER REFERENCES incidents (id);
CREATE INDEX incidents_dedup_resolved ON incidents (dedup_key, resolved_at);

CREATE TABLE timers (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    kind         TEXT NOT NULL,
    incident_id  INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    due_at       TEXT NOT NULL,
    payload      TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    fired_at     TEXT,
    cancelled_at TEXT
);
CREATE INDEX timers_pending ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX timers_incident ON timers (incident_id);
