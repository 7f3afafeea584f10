-- Marks expired the held wake-ups of any tenant whose time ran out at $1,
-- at most $2, earliest first, and answers them.
UPDATE held_wakeups SET expired = TRUE
WHERE (tenant_id, key) IN (
    SELECT tenant_id, key FROM held_wakeups
    WHERE NOT expired AND expires_at <= $1
    ORDER BY expires_at, key
    LIMIT $2)
RETURNING tenant_id, key, payload, received_at, expires_at, expired
