-- The Handle System node (issue 6): one row per handle with its values in wire encoding
-- (opaque here, decoded by handle-proto), keyed by the upper-cased name because handle
-- names compare ASCII case-insensitively; and the prefixes homed on this node.

CREATE TABLE handle_records (
    name_key    TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    value_count INTEGER NOT NULL,
    value_bytes BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE handle_prefixes (
    prefix TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
