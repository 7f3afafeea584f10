-- Fencing: a run's lease carries an epoch that grows whenever the lease
-- passes to another engine, or is taken after it was given up. Every write
-- an engine makes into a run it drives names the epoch it holds, and is
-- refused when the epoch moved on. A lease given up keeps its row, with no
-- owner (''), so that its epoch is never lost.
ALTER TABLE run_leases ADD COLUMN epoch INTEGER NOT NULL DEFAULT 1;

-- The settle view takes the settler's epoch: a settle whose epoch is not
-- the lease's fails the whole statement, as one of an ended run does, and
-- the lease is given up by clearing its owner rather than deleting it.
DROP TRIGGER run_settles_insert;
DROP VIEW run_settles;

CREATE VIEW run_settles (
    id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
    created_at, ended_at, error, lease_owner, lease_epoch
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     WHERE 0;

CREATE TRIGGER run_settles_insert INSTEAD OF INSERT ON run_settles
BEGIN
    UPDATE workflow_runs
    SET workflow_id = NEW.workflow_id, workflow_version = NEW.workflow_version,
        status = NEW.status, trigger_node = NEW.trigger_node,
        trigger_items = NEW.trigger_items, created_at = NEW.created_at,
        ended_at = NEW.ended_at, error = NEW.error
    WHERE id = NEW.id AND tenant_id = NEW.tenant_id
      AND status NOT IN ('succeeded', 'failed', 'cancelled')
      AND EXISTS (SELECT 1 FROM run_leases WHERE run_id = NEW.id AND epoch = NEW.lease_epoch);
    SELECT RAISE(ABORT, 'concertmaster: run not settled') WHERE changes() = 0;
    UPDATE run_leases SET owner = '' WHERE run_id = NEW.id AND owner = NEW.lease_owner;
END;
