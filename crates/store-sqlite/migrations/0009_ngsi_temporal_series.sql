-- Compact history (issue 3, write throughput): every (tenant, entity, attribute) that has
-- instances is a series with an integer id, and instances are keyed by that id instead of
-- repeating tenant, entity id and attribute IRI in the row and in both of its indexes.
-- Series ids grow, so the instances of a new series are appended at the right edge of both
-- instance indexes, and an entity's attributes in first-recorded order are its series in id
-- order (this replaces ngsi_temporal_attributes and its seq column).

CREATE TABLE ngsi_temporal_series (
    series    INTEGER PRIMARY KEY,
    tenant    TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    attribute TEXT NOT NULL
) STRICT;

CREATE UNIQUE INDEX ngsi_temporal_series_key
    ON ngsi_temporal_series (tenant, entity_id, attribute);

-- Existing attributes in their recorded order, then (defensively) any attribute that has
-- instances without an order row.
INSERT INTO ngsi_temporal_series (tenant, entity_id, attribute)
    SELECT tenant, entity_id, attribute FROM ngsi_temporal_attributes
    ORDER BY tenant, entity_id, seq, attribute;
INSERT OR IGNORE INTO ngsi_temporal_series (tenant, entity_id, attribute)
    SELECT tenant, entity_id, attribute FROM ngsi_temporal_instances
    GROUP BY tenant, entity_id, attribute ORDER BY MIN(seq);

CREATE TABLE ngsi_temporal_instances_0009 (
    seq          INTEGER PRIMARY KEY,
    series       INTEGER NOT NULL,
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

-- Same seq (insertion order breaks ties of equal times).
INSERT INTO ngsi_temporal_instances_0009 (seq, series, instance_id, dataset_id, observed_at,
        has_observed, created_at, modified_at, deleted_at, doc)
    SELECT i.seq, s.series, i.instance_id, i.dataset_id, i.observed_at, i.has_observed,
           i.created_at, i.modified_at, i.deleted_at, i.doc
    FROM ngsi_temporal_instances i
    JOIN ngsi_temporal_series s
      ON s.tenant = i.tenant AND s.entity_id = i.entity_id AND s.attribute = i.attribute;

DROP TABLE ngsi_temporal_instances;
DROP TABLE ngsi_temporal_attributes;
ALTER TABLE ngsi_temporal_instances_0009 RENAME TO ngsi_temporal_instances;

-- lastN / timerel on observedAt: newest-first with LIMIT reads only N index entries.
CREATE INDEX ngsi_temporal_instances_time ON ngsi_temporal_instances (series, observed_at);
CREATE UNIQUE INDEX ngsi_temporal_instances_id ON ngsi_temporal_instances (series, instance_id);
