SELECT status FROM workflow_runs WHERE id = $1 AND tenant_id = $2
