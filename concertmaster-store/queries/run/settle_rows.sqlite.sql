-- Settles runs, one or a whole group commit in one statement, through the
-- run_settles view (migration 10): its trigger replaces each run and gives
-- up the settler's lease. The rows placeholder becomes one tuple of 11
-- parameters per run: the first 10 of run/insert_rows, then the lease's owner.
-- A run that is not stored for its tenant, or has ended, fails the whole
-- statement with "concertmaster: run not settled".
INSERT INTO run_settles
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
     created_at, ended_at, error, lease_owner)
VALUES {rows}
