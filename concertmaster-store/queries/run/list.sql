-- $3: every status; otherwise only $4..$9 (unused slots are NULL).
SELECT id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items, created_at, ended_at, error, origin
FROM workflow_runs
WHERE tenant_id = $1
  AND ($2 IS NULL OR workflow_id = $2)
  AND ($3 OR status IN ($4, $5, $6, $7, $8, $9))
ORDER BY created_at DESC, id DESC
LIMIT $10
