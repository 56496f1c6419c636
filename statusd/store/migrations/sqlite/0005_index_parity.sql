-- The same indexes as PostgreSQL (tests/test_store_migrations.py): the repositories are written
-- once for both, so each query finds the same index on either. Open incidents by opening time
-- and recent ones by either time; a timeline in order; due outbox rows by due time and expired
-- leases by lease end, partial indexes that stay small however many sent rows pile up.

DROP INDEX incidents_open;
CREATE INDEX incidents_open ON incidents (opened_at) WHERE resolved_at IS NULL;
CREATE INDEX incidents_opened ON incidents (opened_at);
CREATE INDEX incidents_resolved ON incidents (resolved_at);

DROP INDEX timeline_incident;
CREATE INDEX timeline_incident ON timeline (incident_id, at, id);

DROP INDEX outbox_due;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_sending_lease ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_status ON outbox (status);
