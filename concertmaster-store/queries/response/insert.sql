INSERT INTO form_responses
    (id, tenant_id, form_id, form_version, run_id, node_id, respondent, data, consent, submitter, review_status, submitted_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
