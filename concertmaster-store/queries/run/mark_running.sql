UPDATE workflow_runs SET status = 'running'
WHERE id = $1 AND status = 'waiting'
