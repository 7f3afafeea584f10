-- Takes the lease when it is free, expired at $5, or already the caller's.
INSERT INTO run_leases (run_id, owner, until)
SELECT id, $3, $4 FROM workflow_runs WHERE id = $1 AND tenant_id = $2
ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE run_leases.owner = excluded.owner OR run_leases.until < $5
