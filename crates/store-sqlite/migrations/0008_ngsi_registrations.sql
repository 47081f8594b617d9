-- NGSI-LD context source registrations (issue 3): the broker's JSON encoding per tenant.

CREATE TABLE ngsi_registrations (
    tenant      TEXT NOT NULL,
    id          TEXT NOT NULL,
    doc         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
CREATE INDEX ngsi_registrations_by_created ON ngsi_registrations(tenant, created_at, id);
