-- Holds a wake-up for key $2 of tenant $1; one already held and not
-- expired is kept (the first wake-up wakes the node), an expired one is
-- replaced.
INSERT INTO held_wakeups (tenant_id, key, payload, received_at, expires_at, expired)
VALUES ($1, $2, $3, $4, $5, FALSE)
ON CONFLICT (tenant_id, key) DO UPDATE
SET payload = excluded.payload, received_at = excluded.received_at,
    expires_at = excluded.expires_at, expired = FALSE
WHERE held_wakeups.expired
