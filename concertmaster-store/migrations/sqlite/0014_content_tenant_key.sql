-- Content chunks are keyed by tenant: two tenants' chunks never collide,
-- and a write of one tenant can tell nothing of another's content.
-- SQLite cannot change a primary key in place: the table is rebuilt.
CREATE TABLE content_chunks_by_tenant (
    tenant_id  TEXT    NOT NULL,
    content_id BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    bytes      BLOB    NOT NULL,
    PRIMARY KEY (tenant_id, content_id, seq)
);
INSERT INTO content_chunks_by_tenant (tenant_id, content_id, seq, bytes)
SELECT tenant_id, content_id, seq, bytes FROM content_chunks;
DROP TABLE content_chunks;
ALTER TABLE content_chunks_by_tenant RENAME TO content_chunks;
