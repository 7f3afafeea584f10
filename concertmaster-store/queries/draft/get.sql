SELECT token_hash, tenant_id, data, saved_at FROM form_drafts WHERE token_hash = $1
