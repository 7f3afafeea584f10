INSERT INTO workflows (tenant_id, id, version, name, is_template, tags, definition, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
