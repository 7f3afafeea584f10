INSERT INTO audit_logs (tenant_id, at, actor, action, entity_type, entity_id, details)
VALUES ($1, $2, $3, $4, $5, $6, $7)
