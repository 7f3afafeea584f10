-- Takes the lease as lease/claim_one does, in one statement that first
-- locks the lease row FOR UPDATE: a write still holding the row under the
-- old epoch (FOR KEY SHARE) commits before the lease moves on, so the new
-- holder reads what it wrote. One statement, so that no lock is held while
-- the client is away (a renewal waiting behind it could lose leases).
WITH held AS (
    SELECT run_id FROM run_leases WHERE run_id = $1 FOR UPDATE
)
INSERT INTO run_leases (run_id, owner, until)
SELECT id, $3, $4 FROM workflow_runs
WHERE id = $1 AND tenant_id = $2 AND (SELECT count(*) FROM held) >= 0
ON CONFLICT (run_id) DO UPDATE
SET owner = excluded.owner, until = excluded.until,
    epoch = CASE WHEN run_leases.owner = excluded.owner THEN run_leases.epoch
                 ELSE run_leases.epoch + 1 END
WHERE run_leases.owner = excluded.owner OR run_leases.owner = '' OR run_leases.until < $5
RETURNING epoch
