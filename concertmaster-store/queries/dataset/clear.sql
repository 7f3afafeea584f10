DELETE FROM datasets WHERE tenant_id = $1 AND dataset = $2 AND run_id = $3 AND node_id = $4
