INSERT INTO workflow_runs
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
