SELECT tenant_id, at, actor, action, entity_type, entity_id, details
FROM audit_logs
WHERE tenant_id = $1
  AND ($2 IS NULL OR entity_type = $2)
  AND ($3 IS NULL OR entity_id = $3)
  AND ($4 IS NULL OR at >= $4)
ORDER BY at DESC, id DESC
LIMIT $5
