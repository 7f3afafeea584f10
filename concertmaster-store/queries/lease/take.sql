-- Takes the lease of a run chosen by lease/candidates, unless another
-- engine took it meanwhile.
INSERT INTO run_leases (run_id, owner, until)
VALUES ($1, $2, $3)
ON CONFLICT (run_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
WHERE run_leases.owner = excluded.owner OR run_leases.until < $4
