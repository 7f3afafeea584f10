UPDATE workflow_runs
SET status = $3, error = $4, ended_at = $5
WHERE id = $1 AND tenant_id = $2 AND status NOT IN ('succeeded', 'failed', 'cancelled')
