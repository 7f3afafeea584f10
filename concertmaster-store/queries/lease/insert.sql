-- The lease of a run its engine starts: the run is new, so is the lease.
INSERT INTO run_leases (run_id, owner, until)
VALUES ($1, $2, $3)
