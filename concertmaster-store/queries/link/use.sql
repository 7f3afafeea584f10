-- Uses link $1 of tenant $2 at $3, if it is unused and not expired then.
UPDATE form_links SET used_at = $3
WHERE token_hash = $1 AND tenant_id = $2 AND used_at IS NULL AND expires_at > $3
