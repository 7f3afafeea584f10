SELECT tenant_id, key, run_id, node_id, until, state
FROM waits
WHERE until IS NOT NULL AND until <= $1
ORDER BY until, tenant_id, key
LIMIT $2
