-- Uptime rollups: per component and UTC day, the seconds spent in each status and the probe
-- checks and failures counted. `set_status` accrues the interval a status change closes,
-- from `components.status_since`; the open interval is added when uptime is read. Serving
-- 90 days of uptime reads at most 90 rows per component and never raw probe results.

ALTER TABLE components ADD COLUMN status_since timestamptz;
UPDATE components SET status_since = COALESCE(updated_at, now());

CREATE TABLE component_daily (
    component     text NOT NULL,
    day           date NOT NULL,
    operational_s double precision NOT NULL DEFAULT 0,
    maintenance_s double precision NOT NULL DEFAULT 0,
    degraded_s    double precision NOT NULL DEFAULT 0,
    partial_s     double precision NOT NULL DEFAULT 0,
    major_s       double precision NOT NULL DEFAULT 0,
    checks        bigint NOT NULL DEFAULT 0,
    failures      bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (component, day)
);
