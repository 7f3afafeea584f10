-- Refreshes the wait when the same node suspends on the key again; a key
-- held by another node is left alone (no row changes: a conflict).
INSERT INTO waits (tenant_id, key, run_id, node_id, until, state)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (tenant_id, key) DO UPDATE
SET until = excluded.until, state = excluded.state
WHERE waits.run_id = excluded.run_id AND waits.node_id = excluded.node_id
