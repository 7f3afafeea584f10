-- Settles runs, one or a whole group commit in one statement, through the
-- run_settles view (migrations 10 and 12): its trigger replaces each run and
-- gives up the settler's lease. The rows placeholder becomes one tuple of 12
-- parameters per run: the first 10 of run/insert_rows, then the lease's
-- owner and epoch. A run that is not stored for its tenant, has ended, or is
-- leased at another epoch fails the whole statement with
-- "concertmaster: run not settled".
INSERT INTO run_settles
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
     created_at, ended_at, error, lease_owner, lease_epoch)
VALUES {rows}
