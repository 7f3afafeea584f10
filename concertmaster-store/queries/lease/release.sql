DELETE FROM run_leases
WHERE run_id = $1 AND owner = $2
