-- Takes the lease of a run chosen by lease/candidates, unless another
-- engine took it meanwhile; the epoch grows as in lease/claim_one.
INSERT INTO run_leases (run_id, owner, until)
VALUES ($1, $2, $3)
ON CONFLICT (run_id) DO UPDATE
SET owner = excluded.owner, until = excluded.until,
    epoch = CASE WHEN run_leases.owner = excluded.owner THEN run_leases.epoch
                 ELSE run_leases.epoch + 1 END
WHERE run_leases.owner = excluded.owner OR run_leases.owner = '' OR run_leases.until < $4
RETURNING epoch
