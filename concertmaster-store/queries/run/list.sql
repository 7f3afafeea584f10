-- $3: every status; otherwise only $4..$9 (unused slots are NULL). Every
-- other condition is off where its parameter is NULL. $14 is a LIKE pattern
-- of lower-cased text; $16/$17 continue after a run (created_at, id).
SELECT id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error, origin, parent_run, parent_node
FROM workflow_runs
WHERE tenant_id = $1
  AND ($2 IS NULL OR workflow_id = $2)
  AND ($3 OR status IN ($4, $5, $6, $7, $8, $9))
  AND ($11 IS NULL OR workflow_version = $11)
  AND ($12 IS NULL OR created_at >= $12)
  AND ($13 IS NULL OR created_at < $13)
  AND ($14 IS NULL OR lower(error) LIKE $14 ESCAPE '\')
  AND ($15 IS NULL OR parent_run = $15)
  AND ($16 IS NULL OR created_at < $16 OR (created_at = $16 AND id < $17))
ORDER BY created_at DESC, id DESC
LIMIT $10
