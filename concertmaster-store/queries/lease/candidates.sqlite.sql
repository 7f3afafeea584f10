-- Runs in flight whose lease is free (none, or given up: owner ''), expired
-- at $2, or the caller's ($1; `held` when the caller holds it live),
-- oldest first: at most $3, at most $4 of any one tenant, none of the
-- tenants in the JSON array $5.
SELECT tenant_id, id, created_at, held FROM (
    SELECT r.tenant_id, r.id, r.created_at,
           (l.owner = $1 AND l.until >= $2) AS held,
           ROW_NUMBER() OVER (PARTITION BY r.tenant_id ORDER BY r.created_at, r.id) AS nth
    FROM workflow_runs r
    LEFT JOIN run_leases l ON l.run_id = r.id
    WHERE (r.status IN ('pending', 'running')
           OR (r.status = 'waiting' AND EXISTS (
                SELECT 1 FROM node_executions n
                WHERE n.run_id = r.id AND n.status = 'waiting' AND n.resumed IS NOT NULL)))
      AND (l.run_id IS NULL OR l.owner = $1 OR l.owner = '' OR l.until < $2)
      AND r.tenant_id NOT IN (SELECT value FROM json_each($5))
) AS ranked
WHERE nth <= $4
ORDER BY created_at, id
LIMIT $3
