-- Replaces an open run, for the engine whose lease is at epoch $11
-- (the lease lock: see node/upsert).
UPDATE workflow_runs
SET workflow_id = $3, workflow_version = $4, status = $5, trigger_node = $6, trigger_items = $7,
    created_at = $8, ended_at = $9, error = $10
WHERE id = $1 AND tenant_id = $2 AND status NOT IN ('succeeded', 'failed', 'cancelled')
  AND EXISTS (SELECT 1 FROM run_leases WHERE run_id = $1 AND epoch = $11 {lease_lock})
