-- Content chunks are keyed by tenant: two tenants' chunks never collide,
-- and a write of one tenant can tell nothing of another's content.
ALTER TABLE content_chunks DROP CONSTRAINT content_chunks_pkey;
ALTER TABLE content_chunks ADD PRIMARY KEY (tenant_id, content_id, seq);
