SELECT id, tenant_id, form_id, form_version, run_id, node_id, respondent, data, consent, submitter,
       review_status, reviewed_by, reviewed_at, review_comment, submitted_at, erased_at
FROM form_responses
WHERE id = $1 AND tenant_id = $2
