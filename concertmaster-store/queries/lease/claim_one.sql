UPDATE workflow_runs SET lease_owner = $3, lease_until = $4
WHERE id = $1 AND tenant_id = $2
  AND (lease_owner IS NULL OR lease_owner = $3 OR lease_until < $5)
