SELECT id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error, origin, parent_run, parent_node
FROM workflow_runs
WHERE id = $1 AND tenant_id = $2
