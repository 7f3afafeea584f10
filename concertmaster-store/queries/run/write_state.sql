-- What decides whether a write into a run is taken: its status and its
-- lease's epoch (NULL when it was never leased).
SELECT r.status, l.epoch
FROM workflow_runs r LEFT JOIN run_leases l ON l.run_id = r.id
WHERE r.id = $1 AND r.tenant_id = $2
