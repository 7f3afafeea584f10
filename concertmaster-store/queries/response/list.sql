-- Unused filters are NULL.
SELECT id, tenant_id, form_id, form_version, run_id, node_id, respondent, data, consent, submitter,
       review_status, reviewed_by, reviewed_at, review_comment, submitted_at, erased_at
FROM form_responses
WHERE tenant_id = $1
  AND ($2 IS NULL OR form_id = $2)
  AND ($3 IS NULL OR run_id = $3)
  AND ($4 IS NULL OR node_id = $4)
  AND ($5 IS NULL OR review_status = $5)
  AND ($6 IS NULL OR respondent = $6)
  AND ($7 IS NULL OR submitted_at < $7)
ORDER BY submitted_at DESC, id DESC
LIMIT $8
