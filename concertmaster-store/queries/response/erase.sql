UPDATE form_responses
SET data = $3, respondent = NULL, submitter = $4, erased_at = $5
WHERE id = $1 AND tenant_id = $2
