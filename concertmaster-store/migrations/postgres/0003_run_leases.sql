-- Leases: the engine that drives a run, and until when. A table of their
-- own, so that taking and renewing them never touches the runs table.
CREATE TABLE run_leases (
    run_id UUID        PRIMARY KEY REFERENCES workflow_runs (id) ON DELETE CASCADE,
    owner  TEXT        NOT NULL,
    until  TIMESTAMPTZ NOT NULL
);
