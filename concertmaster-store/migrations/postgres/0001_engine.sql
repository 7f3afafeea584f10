-- Workflows, runs, node executions, waits and the audit log.

CREATE TABLE workflows (
    tenant_id   TEXT        NOT NULL,
    id          TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    name        TEXT        NOT NULL,
    is_template BOOLEAN     NOT NULL DEFAULT FALSE,
    tags        JSONB       NOT NULL DEFAULT '[]',
    definition  JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);
CREATE INDEX workflows_definition ON workflows USING GIN (definition);
CREATE INDEX workflows_active ON workflows (tenant_id, created_at) WHERE NOT is_template;

CREATE TABLE workflow_runs (
    id               UUID        PRIMARY KEY,
    tenant_id        TEXT        NOT NULL,
    workflow_id      TEXT        NOT NULL,
    workflow_version INTEGER     NOT NULL,
    status           TEXT        NOT NULL,
    trigger_node     TEXT,
    trigger_items    JSONB       NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    ended_at         TIMESTAMPTZ,
    error            TEXT
);
CREATE INDEX workflow_runs_by_status ON workflow_runs (tenant_id, status, created_at DESC);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (tenant_id, workflow_id, created_at DESC);
CREATE INDEX workflow_runs_in_flight ON workflow_runs (status) WHERE status IN ('pending', 'running', 'waiting');

CREATE TABLE node_executions (
    seq        BIGSERIAL   PRIMARY KEY,
    run_id     UUID        NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id    TEXT        NOT NULL,
    tenant_id  TEXT        NOT NULL,
    node_type  TEXT        NOT NULL,
    status     TEXT        NOT NULL,
    attempt    INTEGER     NOT NULL,
    input      JSONB       NOT NULL,
    output     JSONB,
    error      JSONB,
    wait       JSONB,
    resumed    JSONB,
    started_at TIMESTAMPTZ,
    ended_at   TIMESTAMPTZ,
    UNIQUE (run_id, node_id)
);
CREATE INDEX node_executions_output ON node_executions USING GIN (output);

CREATE TABLE waits (
    tenant_id TEXT        NOT NULL,
    key       TEXT        NOT NULL,
    run_id    UUID        NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id   TEXT        NOT NULL,
    until     TIMESTAMPTZ,
    state     JSONB       NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX waits_by_time ON waits (until) WHERE until IS NOT NULL;
CREATE INDEX waits_by_run ON waits (run_id);

CREATE TABLE audit_logs (
    id          BIGSERIAL   PRIMARY KEY,
    tenant_id   TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT,
    action      TEXT        NOT NULL,
    entity_type TEXT        NOT NULL,
    entity_id   TEXT        NOT NULL,
    details     JSONB       NOT NULL
);
CREATE INDEX audit_logs_by_entity ON audit_logs (tenant_id, entity_type, entity_id, at DESC);
CREATE INDEX audit_logs_by_time ON audit_logs (tenant_id, at DESC);
