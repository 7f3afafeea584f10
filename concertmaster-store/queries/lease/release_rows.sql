-- Gives up leases (release_run), each only if its owner still holds it.
-- The row stays, with no owner, so that the lease keeps its epoch.
-- One tuple of 2 parameters (run_id, owner) per lease.
UPDATE run_leases SET owner = ''
WHERE (run_id, owner) IN (VALUES {rows})
