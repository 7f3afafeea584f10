-- Stores the runs engines start, one or a whole group commit in one
-- statement: the rows placeholder becomes one tuple of 13 parameters per
-- run, in the order of the column list. A run id stored already fails the
-- whole statement.
INSERT INTO workflow_runs
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error, origin, parent_run, parent_node)
VALUES {rows}
