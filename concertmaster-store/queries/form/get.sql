-- $3: a version, or NULL for the latest.
SELECT id, version, name, json_schema, ui_schema, retention_days
FROM form_schemas
WHERE tenant_id = $1 AND id = $2 AND ($3 IS NULL OR version = $3)
ORDER BY version DESC
LIMIT 1
