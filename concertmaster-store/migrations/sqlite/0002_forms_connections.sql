-- Form schemas and responses (with review status), and ERP connections
-- (config encrypted at rest, with the id of the key that encrypted it).

CREATE TABLE form_schemas (
    tenant_id      TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    name           TEXT    NOT NULL,
    json_schema    TEXT    NOT NULL,
    ui_schema      TEXT    NOT NULL DEFAULT '{}',
    pii_fields     TEXT    NOT NULL DEFAULT '[]',
    retention_days INTEGER,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);

CREATE TABLE form_responses (
    id             BLOB    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL,
    form_id        TEXT    NOT NULL,
    form_version   INTEGER NOT NULL,
    run_id         BLOB    REFERENCES workflow_runs (id) ON DELETE SET NULL,
    data           TEXT    NOT NULL,
    consent        TEXT    NOT NULL DEFAULT '{}',
    submitter      TEXT    NOT NULL DEFAULT '{}',
    review_status  TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (review_status IN ('pending', 'approved', 'rejected')),
    reviewed_by    TEXT,
    reviewed_at    INTEGER,
    review_comment TEXT,
    submitted_at   INTEGER NOT NULL
);
CREATE INDEX form_responses_by_review ON form_responses (tenant_id, form_id, review_status, submitted_at DESC);
CREATE INDEX form_responses_by_time ON form_responses (tenant_id, submitted_at);

CREATE TABLE connections (
    tenant_id        TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    config_encrypted BLOB    NOT NULL,
    key_id           TEXT    NOT NULL,
    config_hash      TEXT    NOT NULL,
    is_active        INTEGER NOT NULL DEFAULT 1,
    last_tested_at   INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX connections_by_key ON connections (key_id);
