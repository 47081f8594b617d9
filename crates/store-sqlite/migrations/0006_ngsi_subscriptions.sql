-- NGSI-LD subscriptions (issue 3): the broker's JSON encoding per tenant, plus delivery
-- counters written separately from the document.

CREATE TABLE ngsi_subscriptions (
    tenant            TEXT NOT NULL,
    id                TEXT NOT NULL,
    doc               TEXT NOT NULL,
    created_at        INTEGER NOT NULL,
    modified_at       INTEGER NOT NULL,
    times_sent        INTEGER NOT NULL DEFAULT 0,
    times_failed      INTEGER NOT NULL DEFAULT 0,
    last_notification INTEGER,
    last_success      INTEGER,
    last_failure      INTEGER,
    PRIMARY KEY (tenant, id)
) STRICT;
CREATE INDEX ngsi_subscriptions_by_created ON ngsi_subscriptions(tenant, created_at, id);
