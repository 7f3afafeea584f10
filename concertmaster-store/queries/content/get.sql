SELECT bytes FROM content_chunks WHERE content_id = $1 AND seq = $2 AND tenant_id = $3
