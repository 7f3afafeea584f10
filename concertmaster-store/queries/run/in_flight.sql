SELECT tenant_id, id FROM workflow_runs r
WHERE r.status IN ('pending', 'running')
   OR (r.status = 'waiting' AND EXISTS (
        SELECT 1 FROM node_executions n
        WHERE n.run_id = r.id AND n.status = 'waiting' AND n.resumed IS NOT NULL))
ORDER BY r.created_at, r.id
