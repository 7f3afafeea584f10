UPDATE run_leases SET until = $3
WHERE run_id = $1 AND owner = $2
