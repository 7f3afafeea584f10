UPDATE connections SET last_tested_at = $3 WHERE tenant_id = $1 AND id = $2
