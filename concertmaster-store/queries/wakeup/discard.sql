DELETE FROM held_wakeups WHERE tenant_id = $1 AND key = $2
