SELECT w.definition FROM workflows w
WHERE w.tenant_id = $1
  AND w.version = (SELECT MAX(v.version) FROM workflows v WHERE v.tenant_id = w.tenant_id AND v.id = w.id)
ORDER BY w.id
