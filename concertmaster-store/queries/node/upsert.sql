INSERT INTO node_executions
    (run_id, node_id, tenant_id, node_type, status, attempt, input, output, error, wait, resumed, started_at, ended_at)
SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
-- The run's status by its primary key: NULL (no such run for the tenant)
-- and an ended run both insert nothing.
WHERE (SELECT status FROM workflow_runs WHERE id = $1 AND tenant_id = $3)
      IN ('pending', 'running', 'waiting')
ON CONFLICT (run_id, node_id) DO UPDATE
SET node_type = excluded.node_type, status = excluded.status, attempt = excluded.attempt,
    input = excluded.input, output = excluded.output, error = excluded.error, wait = excluded.wait,
    resumed = excluded.resumed, started_at = excluded.started_at, ended_at = excluded.ended_at
WHERE node_executions.tenant_id = excluded.tenant_id
