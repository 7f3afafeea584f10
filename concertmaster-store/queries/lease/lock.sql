-- Locks a run's lease row before it is taken (the claim lock: `FOR
-- UPDATE` on Postgres, which waits for every write holding the row under
-- the old epoch to commit, so the new holder reads what they wrote;
-- SQLite writes one at a time). No row: the run was never leased.
SELECT run_id FROM run_leases WHERE run_id = $1 {lease_claim_lock}
