-- Workflows, runs, node executions, waits and the audit log.
-- Timestamps are microseconds since the Unix epoch (UTC); JSON is text.

CREATE TABLE workflows (
    tenant_id   TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    name        TEXT    NOT NULL,
    is_template INTEGER NOT NULL DEFAULT 0,
    tags        TEXT    NOT NULL DEFAULT '[]',
    definition  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id, version)
);

CREATE TABLE workflow_runs (
    id               BLOB    PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    workflow_id      TEXT    NOT NULL,
    workflow_version INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    trigger_node     TEXT,
    trigger_items    TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    ended_at         INTEGER,
    error            TEXT
);
CREATE INDEX workflow_runs_by_status ON workflow_runs (tenant_id, status, created_at DESC);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (tenant_id, workflow_id, created_at DESC);
CREATE INDEX workflow_runs_in_flight ON workflow_runs (status) WHERE status IN ('pending', 'running', 'waiting');

CREATE TABLE node_executions (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     BLOB    NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id    TEXT    NOT NULL,
    tenant_id  TEXT    NOT NULL,
    node_type  TEXT    NOT NULL,
    status     TEXT    NOT NULL,
    attempt    INTEGER NOT NULL,
    input      TEXT    NOT NULL,
    output     TEXT,
    error      TEXT,
    wait       TEXT,
    resumed    TEXT,
    started_at INTEGER,
    ended_at   INTEGER,
    UNIQUE (run_id, node_id)
);

CREATE TABLE waits (
    tenant_id TEXT NOT NULL,
    key       TEXT NOT NULL,
    run_id    BLOB NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    node_id   TEXT NOT NULL,
    until     INTEGER,
    state     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, key)
);
CREATE INDEX waits_by_time ON waits (until) WHERE until IS NOT NULL;
CREATE INDEX waits_by_run ON waits (run_id);

CREATE TABLE audit_logs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT,
    action      TEXT    NOT NULL,
    entity_type TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    details     TEXT    NOT NULL
);
CREATE INDEX audit_logs_by_entity ON audit_logs (tenant_id, entity_type, entity_id, at DESC);
CREATE INDEX audit_logs_by_time ON audit_logs (tenant_id, at DESC);
