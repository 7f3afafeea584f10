-- Unused filters are NULL.
SELECT run_id, node_id, position, item, collected_at
FROM datasets
WHERE tenant_id = $1 AND dataset = $2
  AND ($3 IS NULL OR run_id = $3)
  AND ($4 IS NULL OR collected_at >= $4)
ORDER BY collected_at DESC, run_id DESC, node_id, position
LIMIT $5
