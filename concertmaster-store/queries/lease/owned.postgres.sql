-- Which of the runs in $2 the caller ($1) still holds, or nobody does
-- (given up when its run settled): read without locks. The others are lost.
SELECT run_id FROM run_leases WHERE (owner = $1 OR owner = '') AND run_id = ANY($2)
