-- Moves a waiting run to version $3, provided it still waits on $4. IS
-- TRUE: see run/mark_running.
UPDATE workflow_runs SET workflow_version = $3
WHERE id = $1 AND tenant_id = $2 AND (status = 'waiting') IS TRUE AND workflow_version = $4
