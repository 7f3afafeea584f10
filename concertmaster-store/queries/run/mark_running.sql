-- A woken run is running again. The status test is wrapped in IS TRUE (the
-- same for a column that is never null) so that the planner cannot serve it
-- from the partial index of runs in flight: with statistics taken when few
-- runs waited, that index looks smaller than the primary key, and every
-- wake-up would scan all the runs waiting for its id.
UPDATE workflow_runs SET status = 'running'
WHERE id = $1 AND (status = 'waiting') IS TRUE
