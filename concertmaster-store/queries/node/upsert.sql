-- Saves node executions, one or a whole group commit in one statement.
-- The rows placeholder becomes one tuple of 13 parameters per execution
-- (`($1, ..., $13), ($14, ..., $26)` on Postgres, anonymous `?` on SQLite,
-- in the order of the column list);
-- both SQLite and Postgres name a VALUES list's columns column1, column2, ...
-- A row whose run has ended, or belongs to another tenant, is skipped: the
-- caller compares the count and redoes the group row by row to learn which
-- (rewriting a saved row with the same values).
INSERT INTO node_executions
    (run_id, node_id, tenant_id, node_type, status, attempt, input, output, error, wait, resumed, started_at, ended_at)
SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
       v.column8, v.column9, v.column10, v.column11, v.column12, v.column13
FROM (VALUES {rows}) AS v
WHERE (SELECT status FROM workflow_runs WHERE id = v.column1 AND tenant_id = v.column3)
      IN ('pending', 'running', 'waiting')
ON CONFLICT (run_id, node_id) DO UPDATE
SET node_type = excluded.node_type, status = excluded.status, attempt = excluded.attempt,
    input = excluded.input, output = excluded.output, error = excluded.error, wait = excluded.wait,
    resumed = excluded.resumed, started_at = excluded.started_at, ended_at = excluded.ended_at
WHERE node_executions.tenant_id = excluded.tenant_id
