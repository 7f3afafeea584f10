-- Ends the waits of a group of deliveries in one statement (wait/take for
-- each). One tuple of 2 parameters (tenant_id, key) per delivery; the
-- group's keys are distinct.
DELETE FROM waits
WHERE (tenant_id, key) IN (VALUES {rows})
RETURNING tenant_id, key, run_id, node_id, until, state
