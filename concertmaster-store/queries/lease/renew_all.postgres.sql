-- Extends the caller's ($1) leases on the runs in $2 to $3 in one
-- statement, answering the runs renewed: the others' leases are lost.
UPDATE run_leases SET until = $3
WHERE owner = $1 AND run_id = ANY($2)
RETURNING run_id
