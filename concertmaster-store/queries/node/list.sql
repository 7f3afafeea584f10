SELECT run_id, node_id, node_type, status, attempt, input, output, error, wait, resumed, started_at, ended_at
FROM node_executions
WHERE run_id = $1 AND tenant_id = $2
ORDER BY seq
