DELETE FROM form_responses
WHERE tenant_id = $1 AND form_id = $2 AND submitted_at < $3
