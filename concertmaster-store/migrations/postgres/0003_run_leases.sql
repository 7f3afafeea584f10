-- Leases: the engine that drives a run, and until when.
ALTER TABLE workflow_runs ADD COLUMN lease_owner TEXT;
ALTER TABLE workflow_runs ADD COLUMN lease_until TIMESTAMPTZ;
