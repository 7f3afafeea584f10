-- Starts runs, one or a whole group commit in one statement: each run, its
-- starter's lease and its audit entry. The rows placeholder becomes one
-- tuple of 22 parameters per run, in the order of the column list of v:
-- the 13 of run/insert_rows, the lease's owner and until, and the 7 of
-- audit/insert_rows. A run id stored already fails the whole statement.
-- The lease's foreign key is checked at the end of the statement, after
-- the run is in.
WITH v (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
        created_at, ended_at, error, origin, parent_run, parent_node,
        lease_owner, lease_until,
        audit_tenant_id, audit_at, audit_actor, audit_action, audit_entity_type, audit_entity_id,
        audit_details) AS (VALUES {rows}),
runs AS (
    INSERT INTO workflow_runs
        (id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
         created_at, ended_at, error, origin, parent_run, parent_node)
    SELECT id, tenant_id, workflow_id, workflow_version, status, trigger_node, trigger_items,
           created_at, ended_at, error, origin, parent_run, parent_node
    FROM v
),
leases AS (
    INSERT INTO run_leases (run_id, owner, until)
    SELECT id, lease_owner, lease_until FROM v
)
INSERT INTO audit_logs (tenant_id, at, actor, action, entity_type, entity_id, details)
SELECT audit_tenant_id, audit_at, audit_actor, audit_action, audit_entity_type, audit_entity_id,
       audit_details
FROM v
