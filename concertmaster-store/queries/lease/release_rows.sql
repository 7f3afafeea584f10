-- Gives up leases (release_run), each only if its owner still holds it.
-- One tuple of 2 parameters (run_id, owner) per lease.
DELETE FROM run_leases
WHERE (run_id, owner) IN (VALUES {rows})
