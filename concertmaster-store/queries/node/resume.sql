UPDATE node_executions
SET wait = NULL, resumed = $3
WHERE run_id = $1 AND node_id = $2
