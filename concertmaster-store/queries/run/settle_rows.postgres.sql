-- Settles runs, one or a whole group commit in one statement: replaces each
-- run and gives up the settler's lease (its row stays, with no owner, so the
-- lease keeps its epoch). The rows placeholder becomes one tuple of 12
-- parameters per run: the first 10 of run/insert_rows, then the lease's
-- owner and epoch. A run that is not stored for its tenant, has ended, is
-- leased at another epoch (or is listed twice) fails the whole statement
-- with "concertmaster: run not settled" (migration 11), so that none of the
-- others changes either.
WITH v (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
        created_at, ended_at, error, lease_owner, lease_epoch) AS (VALUES {rows}),
settled AS (
    UPDATE workflow_runs AS r
    SET workflow_id = v.workflow_id, workflow_version = v.workflow_version,
        status = v.status, trigger_node = v.trigger_node, trigger_items = v.trigger_items,
        created_at = v.created_at, ended_at = v.ended_at, error = v.error
    FROM v
    WHERE r.id = v.id AND r.tenant_id = v.tenant_id
      AND r.status NOT IN ('succeeded', 'failed', 'cancelled')
      AND EXISTS (SELECT 1 FROM run_leases l WHERE l.run_id = v.id AND l.epoch = v.lease_epoch
                  FOR KEY SHARE OF l)
    RETURNING r.id, v.lease_owner
),
released AS (
    UPDATE run_leases AS l
    SET owner = ''
    FROM settled AS s
    WHERE l.run_id = s.id AND l.owner = s.lease_owner
)
SELECT CASE WHEN count(*) = (SELECT count(*) FROM v) THEN count(*)
            ELSE concertmaster_refuse('concertmaster: run not settled') END AS settled
FROM settled
