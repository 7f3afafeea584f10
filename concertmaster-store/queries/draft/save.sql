-- Saves the draft of link $1 of tenant $2, replacing the one before,
-- while the link is unused and not expired at $4.
INSERT INTO form_drafts (token_hash, tenant_id, data, saved_at)
SELECT token_hash, tenant_id, $3, $4 FROM form_links
WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NULL AND expires_at > $4
ON CONFLICT (token_hash) DO UPDATE SET data = excluded.data, saved_at = excluded.saved_at
