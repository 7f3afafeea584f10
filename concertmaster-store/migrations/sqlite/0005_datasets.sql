-- Named datasets the collect node fills and hosts query: what each node of
-- each run collected, replaced as a whole when the node runs again.

CREATE TABLE datasets (
    tenant_id    TEXT    NOT NULL,
    dataset      TEXT    NOT NULL,
    run_id       BLOB    NOT NULL,
    node_id      TEXT    NOT NULL,
    position     INTEGER NOT NULL,
    item         TEXT    NOT NULL,
    collected_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, dataset, run_id, node_id, position)
);
CREATE INDEX datasets_by_time ON datasets (tenant_id, dataset, collected_at DESC);
