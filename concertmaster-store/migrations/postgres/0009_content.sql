-- Large values items refer to by reference, in numbered chunks of at most
-- 1 MiB, written once.
CREATE TABLE content_chunks (
    content_id UUID    NOT NULL,
    seq        INTEGER NOT NULL,
    tenant_id  TEXT    NOT NULL,
    bytes      BYTEA   NOT NULL,
    PRIMARY KEY (content_id, seq)
);
