-- The run and node that started a run as a sub-workflow
-- (Engine::start_child); NULL for every other run. Children are looked up
-- by parent when the parent is cancelled.
ALTER TABLE workflow_runs ADD COLUMN parent_run UUID;
ALTER TABLE workflow_runs ADD COLUMN parent_node TEXT;
CREATE INDEX workflow_runs_by_parent ON workflow_runs (tenant_id, parent_run) WHERE parent_run IS NOT NULL;
