-- Fencing: a run's lease carries an epoch that grows whenever the lease
-- passes to another engine, or is taken after it was given up. Every write
-- an engine makes into a run it drives names the epoch it holds, and is
-- refused when the epoch moved on. A lease given up keeps its row, with no
-- owner (''), so that its epoch is never lost.
ALTER TABLE run_leases ADD COLUMN epoch BIGINT NOT NULL DEFAULT 1;
