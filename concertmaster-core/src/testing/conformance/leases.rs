//! Leases, their epochs, fencing and forward-only node records.

use super::*;

/// The epoch of a run's lease grows whenever the lease passes to an engine
/// that did not hold it (a takeover of an expired lease, a lease taken after
/// it was given up, by `claim_run` or `claim_runs`), and stays while its
/// holder renews or claims it again.
pub async fn lease_epochs_grow_on_every_takeover(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    let (now, until) = (t0(), t0() + Duration::seconds(30));
    start_leased(store, &r, "engine-1", until).await;
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-1", now).await,
        Some(Epoch::FIRST),
        "a started run's lease has the first epoch, and its holder keeps it"
    );
    assert_eq!(
        ok!(store.renew_leases("engine-1", &[r.id], until).await),
        vec![]
    );
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-1", now).await,
        Some(Epoch::FIRST),
        "renewing keeps the epoch"
    );
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-2", now).await,
        None,
        "held by engine-1"
    );

    let expired = until + Duration::seconds(1);
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-2", expired).await,
        Some(Epoch::new(2)),
        "taking over an expired lease moves the epoch on"
    );
    ok!(store.release_run(r.id, "engine-2").await);
    assert_eq!(
        ok!(store.renew_leases("engine-2", &[r.id], expired).await),
        vec![],
        "a lease given up is neither renewed nor lost"
    );
    assert_eq!(
        ok!(store.renew_leases("engine-1", &[r.id], expired).await),
        vec![],
        "nor lost to anyone while nobody holds it"
    );
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-2", expired).await,
        Some(Epoch::new(3)),
        "taking back a lease its engine gave up moves the epoch on"
    );
    ok!(store.release_run(r.id, "engine-2").await);
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-1", expired).await,
        Some(Epoch::new(4)),
        "the first holder coming back gets a new epoch too"
    );
    ok!(store.release_run(r.id, "engine-1").await);
    let claimed = ok!(store
        .claim_runs(&crate::store::RunClaim {
            owner: "engine-3",
            until: expired + Duration::seconds(30),
            now: expired,
            limit: 10,
            per_tenant: 10,
            skip: &[],
        })
        .await);
    assert_eq!(claimed, vec![(a.clone(), r.id)]);
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-3", expired).await,
        Some(Epoch::new(5)),
        "claim_runs moves the epoch on as claim_run does"
    );
    assert!(Epoch::new(5) > Epoch::FIRST && Epoch::new(5).get() == 5);
}

/// Every write an engine makes into a run it drives is refused with
/// `Fenced` once another engine took the run's lease, and changes nothing;
/// the new holder's writes go through, and an end that names no epoch (an
/// operator's cancel) ends the run whoever holds it.
pub async fn a_stale_epoch_is_fenced_for_every_write(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    let until = t0() + Duration::seconds(30);
    start_leased(store, &r, "engine-1", until).await;
    ok!(store
        .save_node_execution(&a, &execution(r.id, "first", NodeStatus::Running), E)
        .await);
    let expired = until + Duration::seconds(1);
    let taken = ok!(store
        .claim_run(
            &a,
            r.id,
            "engine-2",
            expired + Duration::seconds(30),
            expired
        )
        .await);
    let current = taken.expect("the expired lease is taken over");
    assert!(current > E, "a takeover moves the epoch on");
    let before_run = ok!(store.run(&a, r.id).await);
    let before_nodes = ok!(store.node_executions(&a, r.id).await);

    let fenced = |err: crate::store::StoreError, what: &str| {
        assert_eq!(err.kind(), StoreErrorKind::Fenced, "{what}: {err}");
        assert!(
            err.to_string().contains(&r.id.to_string()),
            "{what}: the error names the run: {err}"
        );
    };
    let done = execution(r.id, "first", NodeStatus::Succeeded);
    fenced(
        store
            .save_node_execution(&a, &done, E)
            .await
            .expect_err("a stale node write must be fenced"),
        "save_node_execution",
    );
    fenced(
        store
            .save_node_execution(&a, &execution(r.id, "second", NodeStatus::Running), E)
            .await
            .expect_err("a stale first record must be fenced"),
        "save_node_execution of a new node",
    );
    fenced(
        store
            .suspend_node(&a, &waiting(r.id, "ask", "fenced-key", None), E)
            .await
            .expect_err("a stale suspension must be fenced"),
        "suspend_node",
    );
    let mut updated = r.clone();
    updated.error = Some("stale".into());
    fenced(
        store
            .update_run(&updated, E)
            .await
            .expect_err("a stale update must be fenced"),
        "update_run",
    );
    let mut settled = r.clone();
    settled.status = RunStatus::Succeeded;
    settled.ended_at = Some(expired);
    fenced(
        store
            .settle_run(&settled, "engine-1", E, &[])
            .await
            .expect_err("a stale settle must be fenced"),
        "settle_run",
    );
    fenced(
        store
            .end_run(&a, r.id, RunStatus::Failed, "stale", expired, Some(E))
            .await
            .expect_err("a stale end must be fenced"),
        "end_run",
    );
    assert_eq!(
        ok!(store.run(&a, r.id).await),
        before_run,
        "the run is unchanged"
    );
    assert_eq!(
        ok!(store.node_executions(&a, r.id).await),
        before_nodes,
        "the node records are unchanged"
    );
    assert!(
        ok!(store.take_wait(&a, "fenced-key", Wakeup::Timer, None).await).is_none(),
        "a fenced suspension registers no wait"
    );
    assert_eq!(
        claim_epoch(store, &a, r.id, "engine-2", expired).await,
        Some(current),
        "engine-1's refused settle did not give up engine-2's lease"
    );

    ok!(store.save_node_execution(&a, &done, current).await);
    ok!(store
        .suspend_node(&a, &waiting(r.id, "ask", "fenced-key", None), current)
        .await);
    ok!(store.update_run(&updated, current).await);
    let ended = ok!(store
        .end_run(&a, r.id, RunStatus::Cancelled, "withdrawn", expired, None)
        .await)
    .expect("an operator's end ends the run whoever holds it");
    assert_eq!(ended.status, RunStatus::Cancelled);
}

/// A node's record only moves forward: a lower attempt, or an ended
/// attempt made running or waiting again, is refused with `Regressed` and
/// changes nothing; the same state written again, a later attempt, or a
/// running attempt that waits or ends, is taken.
pub async fn node_records_only_move_forward(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    let at = |status, attempt| {
        let mut e = execution(r.id, "export", status);
        e.attempt = attempt;
        e
    };
    ok!(store
        .save_node_execution(&a, &at(NodeStatus::Running, 2), E)
        .await);
    let regressed = |err: crate::store::StoreError, what: &str| {
        assert_eq!(err.kind(), StoreErrorKind::Regressed, "{what}: {err}");
        assert!(
            err.to_string().contains("export"),
            "{what}: the error names the node: {err}"
        );
    };
    regressed(
        store
            .save_node_execution(&a, &at(NodeStatus::Succeeded, 1), E)
            .await
            .expect_err("a lower attempt must be refused"),
        "attempt 1 after attempt 2",
    );
    ok!(store
        .save_node_execution(&a, &at(NodeStatus::Running, 2), E)
        .await);
    let mut suspended = waiting(r.id, "export", "export-key", None);
    suspended.attempt = 2;
    ok!(store.suspend_node(&a, &suspended, E).await);
    ok!(store
        .save_node_execution(&a, &at(NodeStatus::Succeeded, 2), E)
        .await);
    ok!(store
        .save_node_execution(&a, &at(NodeStatus::Succeeded, 2), E)
        .await);
    regressed(
        store
            .save_node_execution(&a, &at(NodeStatus::Running, 2), E)
            .await
            .expect_err("an ended attempt must not run again"),
        "running after succeeded",
    );
    let mut again = waiting(r.id, "export", "export-key-2", None);
    again.attempt = 2;
    regressed(
        store
            .suspend_node(&a, &again, E)
            .await
            .expect_err("an ended attempt must not wait again"),
        "waiting after succeeded",
    );
    assert!(
        ok!(store
            .take_wait(&a, "export-key-2", Wakeup::Timer, None)
            .await)
        .is_none(),
        "a refused suspension registers no wait"
    );
    let stored = ok!(store.node_executions(&a, r.id).await);
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.status, e.attempt))
            .collect::<Vec<_>>(),
        vec![(NodeStatus::Succeeded, 2)],
        "refused writes change nothing"
    );
    ok!(store
        .save_node_execution(&a, &at(NodeStatus::Running, 3), E)
        .await);

    // Among concurrent writes (one group commit), the backwards one alone
    // is refused.
    let writes = [
        at(NodeStatus::Running, 1),
        execution(r.id, "other", NodeStatus::Running),
        at(NodeStatus::Failed, 3),
    ];
    let answers =
        futures_util::future::join_all(writes.iter().map(|w| store.save_node_execution(&a, w, E)))
            .await;
    assert_eq!(
        answers[0].as_ref().map_err(|e| e.kind()),
        Err(StoreErrorKind::Regressed)
    );
    assert!(answers[1].is_ok() && answers[2].is_ok(), "{answers:?}");
}

/// A lease is held by one owner until it expires; renewing tells who lost it.
pub async fn leases_are_exclusive_until_they_expire(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(store.insert_run(&r).await);
    let (now, later) = (t0(), t0() + Duration::seconds(30));
    assert!(ok!(store.claim_run(&a, r.id, "engine-1", later, now).await).is_some());
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-1", later, now).await).is_some(),
        "the holder may claim again"
    );
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-2", later, now).await).is_none(),
        "held by engine-1"
    );
    assert!(
        ok!(store
            .claim_run(&b, r.id, "engine-2", later, later + Duration::seconds(1))
            .await)
        .is_none(),
        "another tenant's run is never claimed"
    );
    assert_eq!(
        ok!(store.renew_leases("engine-1", &[r.id], later).await),
        vec![]
    );

    let expired = later + Duration::seconds(1);
    assert!(ok!(store
        .claim_run(
            &a,
            r.id,
            "engine-2",
            expired + Duration::seconds(30),
            expired
        )
        .await)
    .is_some());
    assert_eq!(
        ok!(store.renew_leases("engine-1", &[r.id], expired).await),
        vec![r.id],
        "engine-1 lost it"
    );
    ok!(store.release_run(r.id, "engine-1").await);
    assert!(
        ok!(store
            .claim_run(&a, r.id, "engine-3", expired, expired)
            .await)
        .is_none(),
        "only the holder releases"
    );
    ok!(store.release_run(r.id, "engine-2").await);
    assert!(ok!(store
        .claim_run(&a, r.id, "engine-3", expired, expired)
        .await)
    .is_some());
}

/// `claim_runs` takes runs in flight whose lease is free, expired or the
/// caller's, across tenants, and never the same run twice.
pub async fn claim_runs_takes_each_free_run_once(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let free = run(&a, "w", RunStatus::Pending, 0);
    let held = run(&b, "w", RunStatus::Running, 1);
    let stale = run(&b, "w", RunStatus::Running, 2);
    let quiet = run(&a, "w", RunStatus::Waiting, 3);
    let done = run(&a, "w", RunStatus::Succeeded, 4);
    for r in [&free, &held, &stale, &quiet, &done] {
        ok!(store.insert_run(r).await);
    }
    let now = t0() + Duration::hours(1);
    assert!(ok!(store
        .claim_run(&b, held.id, "engine-x", now + Duration::seconds(30), now)
        .await)
    .is_some());
    assert!(ok!(store
        .claim_run(
            &b,
            stale.id,
            "engine-x",
            now - Duration::seconds(1),
            now - Duration::seconds(31)
        )
        .await)
    .is_some());

    let claim = |owner, limit| crate::store::RunClaim {
        owner,
        until: now + Duration::seconds(30),
        now,
        limit,
        per_tenant: limit,
        skip: &[],
    };
    let claimed = ok!(store.claim_runs(&claim("engine-y", 10)).await);
    assert_eq!(claimed, vec![(a.clone(), free.id), (b.clone(), stale.id)]);
    assert!(ok!(store.claim_runs(&claim("engine-z", 10)).await).is_empty());
    assert_eq!(
        ok!(store.claim_runs(&claim("engine-y", 1)).await),
        vec![(a.clone(), free.id)],
        "the holder gets its own runs back, oldest first, up to the limit"
    );
}

/// `claim_runs` takes at most `per_tenant` runs of one tenant and none of
/// the tenants skipped, so that one tenant's backlog cannot fill a claim.
pub async fn claim_runs_shares_a_claim_between_tenants(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let mut burst = Vec::new();
    for minute in 0..5 {
        let r = run(&a, "w", RunStatus::Pending, minute);
        ok!(store.insert_run(&r).await);
        burst.push(r.id);
    }
    let late = run(&b, "w", RunStatus::Pending, 10);
    ok!(store.insert_run(&late).await);
    let now = t0() + Duration::hours(1);
    let (skip_a, skip_b) = (&[a.clone()][..], &[b.clone()][..]);
    let claim = |owner, per_tenant, skip| crate::store::RunClaim {
        owner,
        until: now + Duration::seconds(30),
        now,
        limit: 3,
        per_tenant,
        skip,
    };
    assert_eq!(
        ok!(store.claim_runs(&claim("engine-1", 2, &[])).await),
        vec![
            (a.clone(), burst[0]),
            (a.clone(), burst[1]),
            (b.clone(), late.id)
        ],
        "two of the burst, then the other tenant's run"
    );
    assert!(
        ok!(store.claim_runs(&claim("engine-2", 3, skip_a)).await).is_empty(),
        "the burst's tenant is skipped and the other's run is held"
    );
    assert_eq!(
        ok!(store.claim_runs(&claim("engine-2", 3, skip_b)).await),
        vec![
            (a.clone(), burst[2]),
            (a.clone(), burst[3]),
            (a.clone(), burst[4])
        ]
    );
}
