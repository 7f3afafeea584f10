-- Who holds run $1's lease ('' when it was given up).
SELECT owner FROM run_leases WHERE run_id = $1
