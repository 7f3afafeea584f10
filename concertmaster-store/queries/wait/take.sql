DELETE FROM waits
WHERE tenant_id = $1 AND key = $2
RETURNING run_id, node_id, until, state
