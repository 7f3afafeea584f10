-- Ends an open run; with an epoch ($6), only for the engine whose lease is
-- at that epoch (NULL: an end that does not come from the run's driver).
UPDATE workflow_runs
SET status = $3, error = $4, ended_at = $5
WHERE id = $1 AND tenant_id = $2 AND status NOT IN ('succeeded', 'failed', 'cancelled')
  AND ($6 IS NULL OR EXISTS (SELECT 1 FROM run_leases WHERE run_id = $1 AND epoch = $6 {lease_lock}))
