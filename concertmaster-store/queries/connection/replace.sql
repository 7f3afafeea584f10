-- Replaces a connection only while it is stored exactly as $12..$19 (the
-- row its writer read): a change made meanwhile (a rotation, a config
-- update, a deactivation) is never reverted; the writer reads again.
UPDATE connections
SET name = $3, kind = $4, config_encrypted = $5, key_id = $6, config_hash = $7,
    is_active = $8, last_tested_at = $9, updated_at = $10
WHERE tenant_id = $1 AND id = $2 AND created_at = $11
  AND name = $12 AND kind = $13 AND config_encrypted = $14 AND key_id = $15
  AND config_hash = $16 AND is_active = $17
  AND last_tested_at IS NOT DISTINCT FROM $18 AND updated_at = $19
