-- Form links (tokens stored hashed, used once), and what responses need for
-- waiting nodes, GDPR erasure and review lookups.

ALTER TABLE form_responses ADD COLUMN node_id TEXT;
ALTER TABLE form_responses ADD COLUMN respondent TEXT;
ALTER TABLE form_responses ADD COLUMN erased_at TIMESTAMPTZ;
CREATE INDEX form_responses_by_node ON form_responses (tenant_id, run_id, node_id);
CREATE INDEX form_responses_by_respondent ON form_responses (tenant_id, respondent);

CREATE TABLE form_links (
    token_hash   TEXT        PRIMARY KEY,
    tenant_id    TEXT        NOT NULL,
    form_id      TEXT        NOT NULL,
    form_version INTEGER     NOT NULL,
    run_id       UUID,
    node_id      TEXT,
    wait_key     TEXT,
    respondent   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    used_at      TIMESTAMPTZ
);
CREATE INDEX form_links_by_run ON form_links (tenant_id, run_id, node_id);
