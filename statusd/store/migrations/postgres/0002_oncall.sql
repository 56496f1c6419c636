-- Ownership, escalation snapshot, postmortems, merges; and the timers every restart rebuilds from.

ALTER TABLE incidents ADD COLUMN commander TEXT;
ALTER TABLE incidents ADD COLUMN comms TEXT;
ALTER TABLE incidents ADD COLUMN escalation JSONB NOT NULL DEFAULT '{}';
ALTER TABLE incidents ADD COLUMN handoff JSONB;
ALTER TABLE incidents ADD COLUMN last_public_update_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN postmortem TEXT;
ALTER TABLE incidents ADD COLUMN postmortem_at TIMESTAMPTZ;
ALTER TABLE incidents ADD COLUMN merged_into BIGINT REFERENCES incidents (id);
CREATE INDEX incidents_dedup_resolved ON incidents (dedup_key, resolved_at);

CREATE TABLE timers (
    id           BIGSERIAL PRIMARY KEY,
    kind         TEXT NOT NULL,
    incident_id  BIGINT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    due_at       TIMESTAMPTZ NOT NULL,
    payload      JSONB NOT NULL DEFAULT '{}',
    created_at   TIMESTAMPTZ NOT NULL,
    fired_at     TIMESTAMPTZ,
    cancelled_at TIMESTAMPTZ
);
CREATE INDEX timers_pending ON timers (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE INDEX timers_incident ON timers (incident_id);
