-- Uptime rollups: per component and UTC day, the seconds spent in each status and the probe
-- checks and failures counted. `set_status` accrues the interval a status change closes,
-- from `components.status_since`; the open interval is added when uptime is read. Serving
-- 90 days of uptime reads at most 90 rows per component and never raw probe results.

ALTER TABLE components ADD COLUMN status_since TEXT;
UPDATE components SET status_since = COALESCE(updated_at, strftime('%Y-%m-%dT%H:%M:%f000+00:00', 'now'));

CREATE TABLE component_daily (
    component     TEXT NOT NULL,
    day           TEXT NOT NULL,
    operational_s REAL NOT NULL DEFAULT 0,
    maintenance_s REAL NOT NULL DEFAULT 0,
    degraded_s    REAL NOT NULL DEFAULT 0,
    partial_s     REAL NOT NULL DEFAULT 0,
    major_s       REAL NOT NULL DEFAULT 0,
    checks        INTEGER NOT NULL DEFAULT 0,
    failures      INTEGER NOT NULL DEFAULT 0,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (component, day)
) WITHOUT ROWID
