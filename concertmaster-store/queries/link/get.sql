SELECT token_hash, tenant_id, form_id, form_version, run_id, node_id, wait_key, respondent, created_at, expires_at, used_at
FROM form_links
WHERE token_hash = $1
