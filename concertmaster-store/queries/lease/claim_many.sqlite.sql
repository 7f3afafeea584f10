-- Runs in flight whose lease is free, expired or the caller's; concurrent
-- claimers skip the rows another is taking.
UPDATE workflow_runs SET lease_owner = $1, lease_until = $2
WHERE id IN (
    SELECT r.id FROM workflow_runs r
    WHERE (r.status IN ('pending', 'running')
           OR (r.status = 'waiting' AND EXISTS (
                SELECT 1 FROM node_executions n
                WHERE n.run_id = r.id AND n.status = 'waiting' AND n.resumed IS NOT NULL)))
      AND (r.lease_owner IS NULL OR r.lease_owner = $1 OR r.lease_until < $3)
    ORDER BY r.created_at, r.id
    LIMIT $4)
RETURNING tenant_id, id, created_at
