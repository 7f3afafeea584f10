-- Takes the lease when it is free (never taken, or given up: owner ''),
-- expired at $5, or already the caller's, and answers its epoch; no row
-- when another engine holds it. The epoch grows when the lease passes to
-- the caller from anyone else, and stays when the caller held it.
INSERT INTO run_leases (run_id, owner, until)
SELECT id, $3, $4 FROM workflow_runs WHERE id = $1 AND tenant_id = $2
ON CONFLICT (run_id) DO UPDATE
SET owner = excluded.owner, until = excluded.until,
    epoch = CASE WHEN run_leases.owner = excluded.owner THEN run_leases.epoch
                 ELSE run_leases.epoch + 1 END
WHERE run_leases.owner = excluded.owner OR run_leases.owner = '' OR run_leases.until < $5
RETURNING epoch
