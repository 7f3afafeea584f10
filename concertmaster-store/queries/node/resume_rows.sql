-- Records on their nodes the wake-ups that ended a group's waits, in one
-- statement (node/resume for each). One tuple of 3 parameters (run_id,
-- node_id, resumed) per wait.
UPDATE node_executions
SET wait = NULL, resumed = v.column3
FROM (VALUES {rows}) AS v
WHERE node_executions.run_id = v.column1 AND node_executions.node_id = v.column2
