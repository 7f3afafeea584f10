INSERT INTO form_links
    (token_hash, tenant_id, form_id, form_version, run_id, node_id, wait_key, respondent, created_at, expires_at, used_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
