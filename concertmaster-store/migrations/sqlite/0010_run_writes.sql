-- Write-only views that let one statement start or settle a whole group
-- of runs. A lone start was five round trips to SQLite's thread (begin,
-- run, lease, audit entry, commit) and a lone settle four; through these
-- views each is one autocommitted statement, atomic like any statement.
-- The views hold no rows: only their INSTEAD OF INSERT triggers matter.

-- A started run (the 13 columns of run/insert_rows), its starter's lease
-- and its audit entry, one row per run.
CREATE VIEW run_starts (
    id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
    created_at, ended_at, error, origin, parent_run, parent_node,
    lease_owner, lease_until,
    audit_tenant_id, audit_at, audit_actor, audit_action, audit_entity_type, audit_entity_id,
    audit_details
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     WHERE 0;

CREATE TRIGGER run_starts_insert INSTEAD OF INSERT ON run_starts
BEGIN
    INSERT INTO workflow_runs
        (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
         created_at, ended_at, error, origin, parent_run, parent_node)
    VALUES (NEW.id, NEW.tenant_id, NEW.workflow_id, NEW.workflow_version, NEW.status,
            NEW.trigger_node, NEW.trigger_items, NEW.created_at, NEW.ended_at, NEW.error,
            NEW.origin, NEW.parent_run, NEW.parent_node);
    INSERT INTO run_leases (run_id, owner, until)
    VALUES (NEW.id, NEW.lease_owner, NEW.lease_until);
    INSERT INTO audit_logs (tenant_id, at, actor, action, entity_type, entity_id, details)
    VALUES (NEW.audit_tenant_id, NEW.audit_at, NEW.audit_actor, NEW.audit_action,
            NEW.audit_entity_type, NEW.audit_entity_id, NEW.audit_details);
END;

-- A settled run (the first 10 columns of run/insert_rows) and the lease its
-- settler gives up, one row per run. A run that is not stored for its
-- tenant, or has ended already, aborts the whole statement: the caller
-- then settles each run alone to learn which one was refused.
CREATE VIEW run_settles (
    id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
    created_at, ended_at, error, lease_owner
) AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
     WHERE 0;

CREATE TRIGGER run_settles_insert INSTEAD OF INSERT ON run_settles
BEGIN
    UPDATE workflow_runs
    SET workflow_id = NEW.workflow_id, workflow_version = NEW.workflow_version,
        status = NEW.status, trigger_node = NEW.trigger_node,
        trigger_items = NEW.trigger_items, created_at = NEW.created_at,
        ended_at = NEW.ended_at, error = NEW.error
    WHERE id = NEW.id AND tenant_id = NEW.tenant_id
      AND status NOT IN ('succeeded', 'failed', 'cancelled');
    SELECT RAISE(ABORT, 'concertmaster: run not settled') WHERE changes() = 0;
    DELETE FROM run_leases WHERE run_id = NEW.id AND owner = NEW.lease_owner;
END;
