-- Marks the woken runs of a group running again, in one statement
-- (run/mark_running for each, whose note on IS TRUE applies here too).
-- One tuple of 1 parameter (id) per run.
UPDATE workflow_runs SET status = 'running'
WHERE id IN (VALUES {rows}) AND (status = 'waiting') IS TRUE
