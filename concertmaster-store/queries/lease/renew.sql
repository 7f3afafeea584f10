UPDATE workflow_runs SET lease_until = $3
WHERE id = $1 AND lease_owner = $2
