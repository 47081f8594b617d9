-- Write throughput (issue 3): the entity rows move from a WITHOUT ROWID table keyed by
-- (tenant, id) to a rowid table with a unique index on (tenant, id). A row holds an entity's
-- encoded document, types and series list (about a kilobyte); inserted by id, such rows landed
-- all over the key order, and the 16 KiB pages they filled split every few inserts, moving the
-- large rows (page balancing was about a sixth of the store writer's instructions in batch
-- upserts). New rows now append at the table's right edge, and only the small index entry goes
-- in by id. (SQLite's own advice: WITHOUT ROWID suits rows under about a twentieth of a page.)

CREATE TABLE ngsi_entities_0015 (
    tenant               TEXT NOT NULL,
    id                   TEXT NOT NULL,
    -- The current entity.
    doc                  TEXT,
    types                TEXT,     -- JSON array of expanded types
    created_at           INTEGER,
    modified_at          INTEGER,
    -- The temporal entity.
    temporal_types       TEXT,     -- JSON array of expanded types
    temporal_scope       TEXT,     -- JSON array of scopes
    temporal_created_at  INTEGER,
    temporal_modified_at INTEGER,
    temporal_deleted_at  INTEGER,
    series               TEXT      -- JSON array of [attribute, series] pairs (see 0011)
) STRICT;

INSERT INTO ngsi_entities_0015 (tenant, id, doc, types, created_at, modified_at,
    temporal_types, temporal_scope, temporal_created_at, temporal_modified_at,
    temporal_deleted_at, series)
    SELECT tenant, id, doc, types, created_at, modified_at,
    temporal_types, temporal_scope, temporal_created_at, temporal_modified_at,
    temporal_deleted_at, series FROM ngsi_entities ORDER BY tenant, id;

DROP TABLE ngsi_entities;
ALTER TABLE ngsi_entities_0015 RENAME TO ngsi_entities;
CREATE UNIQUE INDEX ngsi_entities_key ON ngsi_entities (tenant, id);
