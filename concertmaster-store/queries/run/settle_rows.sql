-- Replaces settled runs, one or a whole group commit in one statement: the
-- rows placeholder becomes one tuple of 10 parameters per run, in the order
-- of run/insert_rows. Written as an upsert so that one statement updates
-- many rows on both backends. A run that is not stored for its tenant, or
-- has ended, is skipped (it is never inserted): the caller compares the count.
INSERT INTO workflow_runs
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error)
SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7,
       v.column8, v.column9, v.column10
FROM (VALUES {rows}) AS v
WHERE EXISTS (
    SELECT 1 FROM workflow_runs AS r
    WHERE r.id = v.column1 AND r.tenant_id = v.column2
      AND r.status NOT IN ('succeeded', 'failed', 'cancelled'))
ON CONFLICT (id) DO UPDATE
SET workflow_id = excluded.workflow_id, workflow_version = excluded.workflow_version,
    status = excluded.status, trigger_node = excluded.trigger_node,
    trigger_items = excluded.trigger_items, created_at = excluded.created_at,
    ended_at = excluded.ended_at, error = excluded.error
WHERE workflow_runs.tenant_id = excluded.tenant_id
