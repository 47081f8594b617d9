-- NGSI-LD temporal representation (issue 3): temporal entities and every attribute instance.
-- Times are microseconds since the Unix epoch.

CREATE TABLE ngsi_temporal_entities (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    types       TEXT    NOT NULL,  -- JSON array of expanded types
    scope       TEXT    NOT NULL,  -- JSON array of scopes
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    deleted_at  INTEGER,
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

-- Attributes that have instances, in first-recorded order (so lastN needs no scan for them).
CREATE TABLE ngsi_temporal_attributes (
    tenant    TEXT    NOT NULL,
    entity_id TEXT    NOT NULL,
    attribute TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (tenant, entity_id, attribute)
) STRICT, WITHOUT ROWID;

CREATE TABLE ngsi_temporal_instances (
    seq          INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    entity_id    TEXT    NOT NULL,
    attribute    TEXT    NOT NULL,
    instance_id  TEXT    NOT NULL,
    dataset_id   TEXT,
    -- observedAt, or createdAt when the instance has none (has_observed = 0), so one index
    -- orders every instance; range queries on observedAt also require has_observed = 1.
    observed_at  INTEGER NOT NULL,
    has_observed INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    modified_at  INTEGER NOT NULL,
    deleted_at   INTEGER,
    doc          TEXT    NOT NULL
) STRICT;

-- lastN / timerel on observedAt: newest-first with LIMIT reads only N index entries.
CREATE INDEX ngsi_temporal_instances_time
    ON ngsi_temporal_instances (tenant, entity_id, attribute, observed_at);
CREATE UNIQUE INDEX ngsi_temporal_instances_id
    ON ngsi_temporal_instances (tenant, entity_id, attribute, instance_id);
