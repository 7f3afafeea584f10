INSERT INTO form_schemas (tenant_id, id, version, name, json_schema, ui_schema, pii_fields, retention_days, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
