-- Write throughput (issue 3): an entity's series (the integer id of each attribute's history)
-- live in its temporal entity row, as a JSON array of [attribute, series] pairs in
-- first-recorded order, instead of a table of their own with a unique text index. A write
-- then costs no series rows: an entity's series are read with its row (one lookup per
-- entity, not per attribute), and new ones are numbered from a counter. NULL: no series.
--
-- ngsi_temporal_counters holds, for `series`, a number above every series id handed out;
-- the writer reserves ids in blocks ahead of it (so it rarely writes the counter) and starts
-- from it after a restart.

ALTER TABLE ngsi_temporal_entities ADD COLUMN series TEXT;

-- Series whose entity has no temporal entity row (not written by citybrain, but kept).
INSERT OR IGNORE INTO ngsi_temporal_entities (tenant, id, types, scope, created_at, modified_at)
    SELECT s.tenant, s.entity_id, '[]', '[]',
           COALESCE((SELECT MIN(i.created_at) FROM ngsi_temporal_instances i WHERE i.series = s.series), 0),
           COALESCE((SELECT MAX(i.modified_at) FROM ngsi_temporal_instances i WHERE i.series = s.series), 0)
    FROM ngsi_temporal_series s;

UPDATE ngsi_temporal_entities SET series = (
    SELECT json_group_array(json_array(s.attribute, s.series)) FROM
        (SELECT attribute, series FROM ngsi_temporal_series
          WHERE tenant = ngsi_temporal_entities.tenant AND entity_id = ngsi_temporal_entities.id
          ORDER BY series) s)
WHERE EXISTS (SELECT 1 FROM ngsi_temporal_series
               WHERE tenant = ngsi_temporal_entities.tenant AND entity_id = ngsi_temporal_entities.id);

CREATE TABLE ngsi_temporal_counters (
    name  TEXT    PRIMARY KEY,
    next  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO ngsi_temporal_counters (name, next)
    VALUES ('series', COALESCE((SELECT MAX(series) FROM ngsi_temporal_series), 0) + 1);

DROP TABLE ngsi_temporal_series;
