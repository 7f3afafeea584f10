-- What decides whether a write into a run is taken: its status and its
-- lease's epoch (NULL when it was never leased). Inside a write's
-- transaction the lease row is locked (the lease lock: see node/upsert).
SELECT r.status, (SELECT l.epoch FROM run_leases l WHERE l.run_id = r.id {lease_lock}) AS epoch
FROM workflow_runs r
WHERE r.id = $1 AND r.tenant_id = $2
