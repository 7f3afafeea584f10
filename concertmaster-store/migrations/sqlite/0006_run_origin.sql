-- Where a re-run came from (Engine::rerun): the run, its version, the nodes
-- restarted and those reused, as JSON; NULL for every other run.
ALTER TABLE workflow_runs ADD COLUMN origin TEXT;
