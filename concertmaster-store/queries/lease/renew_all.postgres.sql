-- Extends the caller's ($1) leases on the runs in $2 to $3 in one
-- statement, answering the runs renewed. A lease row another transaction
-- has locked (a settle giving it up, a claim looking at it) is skipped
-- rather than waited for: one slow transaction must not hold back the
-- renewal of every other lease. The caller tells skipped rows it still
-- owns (renewed next time) from lost ones.
UPDATE run_leases SET until = $3
WHERE run_id IN (
    SELECT run_id FROM run_leases
    WHERE owner = $1 AND run_id = ANY($2)
    FOR NO KEY UPDATE SKIP LOCKED)
RETURNING run_id
