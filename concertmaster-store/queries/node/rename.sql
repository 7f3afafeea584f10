-- Renames a node's record within run $1 ($2 to $3), with its wait ($4,
-- the stored wait with the new node id, or NULL).
UPDATE node_executions SET node_id = $3, wait = $4
WHERE run_id = $1 AND node_id = $2
