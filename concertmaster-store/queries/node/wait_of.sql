SELECT wait FROM node_executions WHERE run_id = $1 AND node_id = $2
