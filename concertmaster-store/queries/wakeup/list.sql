SELECT key, payload, received_at, expires_at, expired
FROM held_wakeups
WHERE tenant_id = $1
ORDER BY received_at, key
