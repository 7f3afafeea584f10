-- Runs in flight whose lease is free, expired at $2, or the caller's ($1).
SELECT r.tenant_id, r.id, r.created_at
FROM workflow_runs r
LEFT JOIN run_leases l ON l.run_id = r.id
WHERE (r.status IN ('pending', 'running')
       OR (r.status = 'waiting' AND EXISTS (
            SELECT 1 FROM node_executions n
            WHERE n.run_id = r.id AND n.status = 'waiting' AND n.resumed IS NOT NULL)))
  AND (l.run_id IS NULL OR l.owner = $1 OR l.until < $2)
ORDER BY r.created_at, r.id
LIMIT $3
