-- Write throughput (issue 3): an instance written without an id gets one minted from its row
-- (`urn:ngsi-ld:Instance:<seq>`), so it needs no entry in a unique text index. Its
-- instance_id column is '' (the column stays NOT NULL: no table rebuild); instances stored
-- with an id of their own (all those written before this migration) keep it, unique per
-- series through a partial index that holds only them. SQLite numbers the rows one past the
-- largest; a delete that takes the largest leaves a placeholder row with that number (series
-- 0), so a minted id is never handed out twice.

DROP INDEX ngsi_temporal_instances_id;

CREATE UNIQUE INDEX ngsi_temporal_instances_given_id
    ON ngsi_temporal_instances (series, instance_id) WHERE instance_id <> '';
