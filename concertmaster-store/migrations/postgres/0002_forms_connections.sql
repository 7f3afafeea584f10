-- Form schemas and responses (with review status), and ERP connections
-- (config encrypted at rest, with the id of the key that encrypted it).

CREATE TABLE form_schemas (
    tenant_id      TEXT        NOT NULL,
    id             TEXT        NOT NULL,
    version        INTEGER     NOT NULL,
    name           TEXT        NOT NULL,
    json_schema    JSONB       NOT NULL,
    ui_schema      JSONB       NOT NULL DEFAULT '{}',
    pii_fields     JSONB       NOT NULL DEFAULT '[]',
    retention_days INTEGER,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);

CREATE TABLE form_responses (
    id             UUID        PRIMARY KEY,
    tenant_id      TEXT        NOT NULL,
    form_id        TEXT        NOT NULL,
    form_version   INTEGER     NOT NULL,
    run_id         UUID        REFERENCES workflow_runs (id) ON DELETE SET NULL,
    data           JSONB       NOT NULL,
    consent        JSONB       NOT NULL DEFAULT '{}',
    submitter      JSONB       NOT NULL DEFAULT '{}',
    review_status  TEXT        NOT NULL DEFAULT 'pending'
                   CHECK (review_status IN ('pending', 'approved', 'rejected')),
    reviewed_by    TEXT,
    reviewed_at    TIMESTAMPTZ,
    review_comment TEXT,
    submitted_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX form_responses_by_review ON form_responses (tenant_id, form_id, review_status, submitted_at DESC);
CREATE INDEX form_responses_by_time ON form_responses (tenant_id, submitted_at);
CREATE INDEX form_responses_data ON form_responses USING GIN (data);

CREATE TABLE connections (
    tenant_id        TEXT        NOT NULL,
    id               TEXT        NOT NULL,
    name             TEXT        NOT NULL,
    kind             TEXT        NOT NULL,
    config_encrypted BYTEA       NOT NULL,
    key_id           TEXT        NOT NULL,
    config_hash      TEXT        NOT NULL,
    is_active        BOOLEAN     NOT NULL DEFAULT TRUE,
    last_tested_at   TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX connections_by_key ON connections (key_id);
