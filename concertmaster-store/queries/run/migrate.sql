-- Moves a waiting run to version $3, provided it still waits on $4.
UPDATE workflow_runs SET workflow_version = $3
WHERE id = $1 AND tenant_id = $2 AND status = 'waiting' AND workflow_version = $4
