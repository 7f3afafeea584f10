SELECT run_id, node_id FROM waits WHERE tenant_id = $1 AND key = $2
