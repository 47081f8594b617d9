-- The NGSI-LD context broker: entities as JSON documents, their types for indexed
-- look-ups, the tenants that hold NGSI-LD data, and stored @context documents.

CREATE TABLE ngsi_tenants (
    tenant     TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE ngsi_entities (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE ngsi_entity_types (
    tenant TEXT NOT NULL,
    type   TEXT NOT NULL,
    id     TEXT NOT NULL,
    PRIMARY KEY (tenant, type, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX ngsi_entity_types_by_id ON ngsi_entity_types (tenant, id);

CREATE TABLE ngsi_contexts (
    id         TEXT PRIMARY KEY,
    url        TEXT,
    kind       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
