-- Write throughput (issue 3): the entity rows lose their CHECK that a row holds at least one
-- part (migration 0013). The writer's multi-row upserts update both parts, and SQLite gives
-- any multi-row statement whose UPDATE may abort on a CHECK a statement journal: a copy of
-- every page the statement touches, kept in memory in case the statement fails halfway. In
-- batch upserts that copying was about a twentieth of the writer's time. The invariant stays
-- with the code that writes the rows: a part is cleared only by a statement that deletes the
-- row when the other part is absent (ngsi.rs `delete_entity`, ngsi_temporal.rs), and the
-- store test suite checks that an entity deleted without history leaves no row.

CREATE TABLE ngsi_entities_0014 (
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
    series               TEXT,     -- JSON array of [attribute, series] pairs (see 0011)
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

INSERT INTO ngsi_entities_0014 SELECT tenant, id, doc, types, created_at, modified_at,
    temporal_types, temporal_scope, temporal_created_at, temporal_modified_at,
    temporal_deleted_at, series FROM ngsi_entities;

DROP TABLE ngsi_entities;
ALTER TABLE ngsi_entities_0014 RENAME TO ngsi_entities;
