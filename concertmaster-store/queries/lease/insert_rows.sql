-- The leases of runs their engines start: the runs are new, so are the
-- leases. One tuple of 3 parameters (run_id, owner, until) per lease.
INSERT INTO run_leases (run_id, owner, until)
VALUES {rows}
