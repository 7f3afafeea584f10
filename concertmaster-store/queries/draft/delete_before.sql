-- The drafts of form $2's links of tenant $1 saved before $3.
DELETE FROM form_drafts
WHERE tenant_id = $1 AND saved_at < $3
  AND token_hash IN (SELECT token_hash FROM form_links WHERE tenant_id = $1 AND form_id = $2)
