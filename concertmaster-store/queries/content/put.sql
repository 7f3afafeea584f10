INSERT INTO content_chunks (content_id, seq, tenant_id, bytes) VALUES ($1, $2, $3, $4)
