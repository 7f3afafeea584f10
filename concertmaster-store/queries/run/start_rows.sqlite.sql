-- Starts runs, one or a whole group commit in one statement, through the
-- run_starts view (migration 10): its trigger stores each run, its
-- starter's lease and its audit entry. The rows placeholder becomes one
-- tuple of 22 parameters per run: the 13 of run/insert_rows, the lease's
-- owner and until, and the 7 of audit/insert_rows. A run id stored already
-- fails the whole statement.
INSERT INTO run_starts
    (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
     created_at, ended_at, error, origin, parent_run, parent_node,
     lease_owner, lease_until,
     audit_tenant_id, audit_at, audit_actor, audit_action, audit_entity_type, audit_entity_id,
     audit_details)
VALUES {rows}
