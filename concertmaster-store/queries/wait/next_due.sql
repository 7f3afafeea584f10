SELECT MIN(until) AS next_due FROM waits
