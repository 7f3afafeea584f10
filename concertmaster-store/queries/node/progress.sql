-- Where a node's record stands: its status and attempt.
SELECT status, attempt FROM node_executions WHERE run_id = $1 AND node_id = $2
