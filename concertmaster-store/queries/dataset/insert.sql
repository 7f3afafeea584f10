INSERT INTO datasets (tenant_id, dataset, run_id, node_id, position, item, collected_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
