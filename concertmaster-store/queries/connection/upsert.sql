INSERT INTO connections
    (tenant_id, id, name, kind, config_encrypted, key_id, config_hash, is_active, last_tested_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (tenant_id, id) DO UPDATE
SET name = excluded.name, kind = excluded.kind, config_encrypted = excluded.config_encrypted,
    key_id = excluded.key_id, config_hash = excluded.config_hash, is_active = excluded.is_active,
    last_tested_at = excluded.last_tested_at, updated_at = excluded.updated_at
