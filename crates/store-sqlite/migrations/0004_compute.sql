-- The computing-power network: the alliance's site catalogue, jobs, their events and
-- output, and per-tenant quotas. Independent of other areas' tables.

CREATE TABLE cpn_sites (
    id             TEXT PRIMARY KEY,
    owner          TEXT NOT NULL,
    engine         TEXT NOT NULL,
    config         TEXT NOT NULL, -- JSON (cpn-core SiteConfig)
    status         TEXT NOT NULL,
    last_heartbeat INTEGER,
    registered_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE cpn_jobs (
    id           TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    spec         TEXT NOT NULL, -- JSON, as submitted
    state        TEXT NOT NULL,
    site         TEXT,
    exec_id      TEXT,
    attempts     INTEGER NOT NULL,
    exit_code    INTEGER,
    detail       TEXT NOT NULL,
    submitted_at INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    log          TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX cpn_jobs_by_tenant ON cpn_jobs(tenant, submitted_at);
CREATE INDEX cpn_jobs_active ON cpn_jobs(state) WHERE state IN ('pending', 'running');

CREATE TABLE cpn_job_events (
    job_id TEXT NOT NULL REFERENCES cpn_jobs(id),
    seq    INTEGER NOT NULL,
    at     INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL, -- JSON
    PRIMARY KEY (job_id, seq)
) STRICT;

CREATE TABLE cpn_quotas (
    tenant          TEXT PRIMARY KEY,
    max_active_jobs INTEGER NOT NULL,
    max_cpu_cores   REAL NOT NULL,
    max_gpus        REAL NOT NULL
) STRICT;
