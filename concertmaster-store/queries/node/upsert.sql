-- Saves node executions, one or a whole group commit in one statement.
-- The rows placeholder becomes one tuple of 14 parameters per execution
-- (`($1, ..., $14), ($15, ..., $28)` on Postgres, anonymous `?` on SQLite):
-- the 13 of the column list, in its order, then the writer's lease epoch;
-- both SQLite and Postgres name a VALUES list's columns column1, column2, ...
-- A row is skipped when its run has ended, belongs to another tenant, or
-- is leased at another epoch (fencing: the lease lock is `FOR KEY SHARE`
-- on Postgres, so that a claim of the lease waits for this write's commit
-- and whoever claims reads what it wrote; SQLite writes one at a time), and when it would move its node
-- backwards: a lower attempt, or an ended attempt made running or waiting
-- again. The caller compares the count and redoes the group row by row to
-- learn which (rewriting a saved row with the same values). The run is
-- read by a scalar subquery, a primary-key lookup per row: as EXISTS, the
-- planner may join the whole VALUES list against a scan of the runs (or of
-- the partial index of runs in flight), which grows with the runs stored.
INSERT INTO node_executions
    (run_id, node_id, tenant_id, node_type, status, attempt, input, output, error, wait, resumed, started_at, ended_at)
SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
       v.column8, v.column9, v.column10, v.column11, v.column12, v.column13
FROM (VALUES {rows}) AS v
WHERE (SELECT r.status FROM workflow_runs r WHERE r.id = v.column1 AND r.tenant_id = v.column3)
      IN ('pending', 'running', 'waiting')
  AND EXISTS (
    SELECT 1 FROM run_leases l WHERE l.run_id = v.column1 AND l.epoch = v.column14 {lease_lock})
ON CONFLICT (run_id, node_id) DO UPDATE
SET node_type = excluded.node_type, status = excluded.status, attempt = excluded.attempt,
    input = excluded.input, output = excluded.output, error = excluded.error, wait = excluded.wait,
    resumed = excluded.resumed, started_at = excluded.started_at, ended_at = excluded.ended_at
WHERE node_executions.tenant_id = excluded.tenant_id
  AND (excluded.attempt > node_executions.attempt
       OR (excluded.attempt = node_executions.attempt
           AND (node_executions.status IN ('running', 'waiting')
                OR excluded.status NOT IN ('running', 'waiting'))))
