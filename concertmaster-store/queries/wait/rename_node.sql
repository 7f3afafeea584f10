UPDATE waits SET node_id = $3 WHERE run_id = $1 AND node_id = $2
