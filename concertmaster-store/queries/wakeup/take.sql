-- Takes the wake-up held (not expired) for key $2 of tenant $1, for a node
-- suspending on it.
DELETE FROM held_wakeups
WHERE tenant_id = $1 AND key = $2 AND NOT expired
RETURNING payload
