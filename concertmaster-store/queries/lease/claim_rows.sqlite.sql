-- Takes the leases of several runs as lease/claim_one does each, in one
-- statement: rows (run id, tenant, owner, until, now). Answers run id,
-- owner and epoch of each lease taken; a run another engine holds, or not
-- stored for the tenant, answers no row. `WHERE true` tells SQLite's parser
-- that ON CONFLICT belongs to the INSERT, not to the join.
WITH asked (run_id, tenant_id, owner, until, now) AS (VALUES {rows})
INSERT INTO run_leases (run_id, owner, until)
SELECT r.id, a.owner, a.until
FROM asked a JOIN workflow_runs r ON r.id = a.run_id AND r.tenant_id = a.tenant_id
WHERE true
ON CONFLICT (run_id) DO UPDATE
SET owner = excluded.owner, until = excluded.until,
    epoch = CASE WHEN run_leases.owner = excluded.owner THEN run_leases.epoch
                 ELSE run_leases.epoch + 1 END
WHERE run_leases.owner = excluded.owner OR run_leases.owner = ''
   OR run_leases.until < (SELECT max(a.now) FROM asked a
                          WHERE a.run_id = excluded.run_id AND a.owner = excluded.owner)
RETURNING run_id, owner, epoch
