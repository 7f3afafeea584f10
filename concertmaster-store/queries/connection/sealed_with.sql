-- Across tenants: a key rotation re-seals these.
SELECT tenant_id, id, name, kind, config_encrypted, key_id, config_hash, is_active, last_tested_at, created_at, updated_at
FROM connections
WHERE key_id = $1
ORDER BY tenant_id, id
LIMIT $2
