UPDATE node_executions
SET status = 'cancelled', wait = NULL, ended_at = $2
WHERE run_id = $1 AND status IN ('running', 'waiting')
