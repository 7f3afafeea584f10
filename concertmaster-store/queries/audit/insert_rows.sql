-- Appends audit entries, one tuple of 7 parameters per entry in the order
-- of the column list.
INSERT INTO audit_logs (tenant_id, at, actor, action, entity_type, entity_id, details)
VALUES {rows}
