-- Runs in flight whose lease is free (none, or given up: owner ''), expired
-- at $2, or the caller's ($1; `held` when the caller holds it live),
-- oldest first: at most $3, at most $4 of any one tenant, none of the
-- tenants in the JSON array $5. The ranking is a subquery: row locks and
-- window functions do not mix in one SELECT.
SELECT r.tenant_id, r.id, r.created_at,
       (SELECT l.owner = $1 AND l.until >= $2 FROM run_leases l WHERE l.run_id = r.id) AS held
FROM workflow_runs r
WHERE r.id IN (
    SELECT id FROM (
        SELECT c.id,
               ROW_NUMBER() OVER (PARTITION BY c.tenant_id ORDER BY c.created_at, c.id) AS nth
        FROM workflow_runs c
        LEFT JOIN run_leases l ON l.run_id = c.id
        WHERE (c.status IN ('pending', 'running')
               OR (c.status = 'waiting' AND EXISTS (
                    SELECT 1 FROM node_executions n
                    WHERE n.run_id = c.id AND n.status = 'waiting' AND n.resumed IS NOT NULL)))
          AND (l.run_id IS NULL OR l.owner = $1 OR l.owner = '' OR l.until < $2)
          AND c.tenant_id NOT IN (SELECT jsonb_array_elements_text($5))
    ) AS ranked
    WHERE nth <= $4)
ORDER BY r.created_at, r.id
LIMIT $3
-- Rows another claimer is looking at are skipped; the lock is compatible
-- with the key-share locks node writes take on their run.
FOR NO KEY UPDATE OF r SKIP LOCKED
