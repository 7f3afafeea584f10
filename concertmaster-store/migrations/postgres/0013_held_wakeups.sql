-- Wake-ups that came for a key no node waited on yet (a form answer while
-- its node is still suspending, a child run ending first, an early
-- resume). A suspension on the key takes the one held, in the same
-- transaction; an expired one no suspension takes, and it stays listed
-- until the host discards it.
CREATE TABLE held_wakeups (
    tenant_id   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    payload     JSONB       NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    expired     BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX held_wakeups_to_expire ON held_wakeups (expires_at) WHERE NOT expired;
