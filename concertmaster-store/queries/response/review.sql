-- Decides pending response $1 of tenant $2.
UPDATE form_responses
SET review_status = $3, reviewed_by = $4, review_comment = $5, reviewed_at = $6
WHERE id = $1 AND tenant_id = $2 AND review_status = 'pending'
