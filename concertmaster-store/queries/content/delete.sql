DELETE FROM content_chunks WHERE content_id = $1 AND tenant_id = $2
