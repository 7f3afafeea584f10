SELECT version FROM workflows
WHERE tenant_id = $1 AND id = $2
ORDER BY version
