-- Secure-computation jobs between nodes (issue 8): one node's copy of each job's governance
-- record, its approval and its outcome. Released results stay only on the receiver.

CREATE TABLE secure_jobs (
    tenant            TEXT NOT NULL,
    id                TEXT NOT NULL,
    governance        TEXT NOT NULL, -- JSON document every administrator approves
    governance_digest TEXT NOT NULL, -- hex SHA-256 of governance
    local_party       TEXT NOT NULL,
    expires_at        INTEGER NOT NULL,
    status            TEXT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    approved_by       TEXT,
    approved_at       INTEGER,
    error             TEXT,
    result            TEXT,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
CREATE INDEX secure_jobs_by_created ON secure_jobs(tenant, created_at);
