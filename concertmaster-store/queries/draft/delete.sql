DELETE FROM form_drafts WHERE token_hash = $1
