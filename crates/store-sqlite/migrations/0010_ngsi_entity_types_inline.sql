-- Write throughput (issue 3): an entity's types live in its own row (a JSON array of expanded
-- types) instead of a separate table with two indexes. Every entity write then costs one row
-- and no type reads; the broker answers type queries from its in-memory index, and the store's
-- own type filter scans the tenant's rows.

ALTER TABLE ngsi_entities ADD COLUMN types TEXT NOT NULL DEFAULT '[]';

UPDATE ngsi_entities SET types = COALESCE(
    (SELECT json_group_array(type) FROM
        (SELECT t.type FROM ngsi_entity_types t
          WHERE t.tenant = ngsi_entities.tenant AND t.id = ngsi_entities.id
          ORDER BY t.type)),
    '[]');

DROP TABLE ngsi_entity_types;
