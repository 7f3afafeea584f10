//! Waits, deliveries and held wake-ups.

use super::*;

/// Taking a wait removes it, records the wake-up on the node and marks the run running; a second take gets nothing.
pub async fn a_wait_is_taken_once(store: &dyn Store) {
    let a = tenant_a();
    let mut r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .suspend_node(
            &a,
            &waiting(r.id, "review", "review:1", Some(t0() + Duration::days(3))),
            E
        )
        .await);
    r.status = RunStatus::Waiting;
    ok!(store.update_run(&r, E).await);

    let payload = json!({"decision": "approved"});
    let wakeup = Wakeup::Event {
        key: "review:1".into(),
        payload: payload.clone(),
    };
    let audit = crate::store::DeliveryAudit {
        at: t0(),
        actor: Some("reviewer".into()),
    };
    let wait = ok!(store
        .take_wait(&a, "review:1", wakeup.clone(), Some(&audit))
        .await)
    .expect("the wait is there to take");
    assert_eq!((wait.run_id, wait.node_id.as_str()), (r.id, "review"));
    assert_eq!(
        ok!(store
            .take_wait(&a, "review:1", wakeup.clone(), Some(&audit))
            .await),
        None,
        "a wait is taken once"
    );
    // The wait's end carried its audit entry; the call that found no wait
    // wrote none.
    let entries = ok!(store
        .audit_log(&a, &crate::store::AuditFilter::default())
        .await);
    let resumed: Vec<_> = entries
        .iter()
        .filter(|e| e.action == crate::store::AuditAction::Resume)
        .collect();
    assert_eq!(resumed.len(), 1, "{entries:?}");
    assert_eq!(
        (
            resumed[0].entity_type.as_str(),
            resumed[0].entity_id.clone(),
            resumed[0].actor.as_deref(),
            &resumed[0].details
        ),
        (
            "run",
            r.id.to_string(),
            Some("reviewer"),
            &json!({ "node": "review", "key": "review:1" })
        )
    );

    let records = ok!(store.node_executions(&a, r.id).await);
    let resumed = records[0]
        .resumed
        .as_ref()
        .expect("the node records its wake-up");
    assert_eq!(resumed.wakeup, wakeup);
    assert_eq!(
        resumed.state,
        json!({"sent": 3}),
        "the wait's state is handed back"
    );
    assert_eq!(records[0].wait, None);
    assert_eq!(
        ok!(store.run(&a, r.id).await).map(|r| r.status),
        Some(RunStatus::Running)
    );
    assert_eq!(
        ok!(store.next_due().await),
        None,
        "the wait's timer went with it"
    );
}

/// Two nodes cannot wait on one key of a tenant; the same node may suspend on it again.
pub async fn wait_keys_are_unique_per_tenant(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r1 = run(&a, "w", RunStatus::Running, 0);
    let r2 = run(&a, "w", RunStatus::Running, 1);
    let r3 = run(&b, "w", RunStatus::Running, 2);
    for r in [&r1, &r2, &r3] {
        ok!(insert_leased(store, r).await);
    }
    ok!(store
        .suspend_node(&a, &waiting(r1.id, "n", "form:x", None), E)
        .await);
    let err = store
        .suspend_node(&a, &waiting(r2.id, "n", "form:x", None), E)
        .await
        .expect_err("a key waited on by another node must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    ok!(store
        .suspend_node(&a, &waiting(r1.id, "n", "form:x", Some(t0())), E)
        .await);
    ok!(store
        .suspend_node(&b, &waiting(r3.id, "n", "form:x", None), E)
        .await);
}

/// Due waits come earliest first, only up to `now`, across tenants; `next_due` is the earliest.
pub async fn due_waits_come_in_time_order(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r1 = run(&a, "w", RunStatus::Running, 0);
    let r2 = run(&b, "w", RunStatus::Running, 1);
    for r in [&r1, &r2] {
        ok!(insert_leased(store, r).await);
    }
    ok!(store
        .suspend_node(
            &a,
            &waiting(r1.id, "late", "t-late", Some(t0() + Duration::hours(2))),
            E
        )
        .await);
    ok!(store
        .suspend_node(
            &b,
            &waiting(r2.id, "early", "t-early", Some(t0() + Duration::hours(1))),
            E
        )
        .await);
    ok!(store
        .suspend_node(&a, &waiting(r1.id, "event", "e-only", None), E)
        .await);

    assert_eq!(ok!(store.next_due().await), Some(t0() + Duration::hours(1)));
    assert!(ok!(store.due_waits(t0(), 10).await).is_empty());
    let due = ok!(store.due_waits(t0() + Duration::hours(3), 10).await);
    let keys: Vec<(&str, &str)> = due
        .iter()
        .map(|(t, w)| (t.as_str(), w.key.as_str()))
        .collect();
    assert_eq!(keys, [("tenant-b", "t-early"), ("tenant-a", "t-late")]);
    assert_eq!(
        ok!(store.due_waits(t0() + Duration::hours(3), 1).await).len(),
        1
    );
}

/// Ending a run marks it and its running and waiting nodes, and removes its waits; an ended run stays as it was.
pub async fn ending_a_run_stops_its_nodes_and_waits(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Waiting, 0);
    ok!(insert_leased(store, &r).await);
    let mut finished = execution(r.id, "done", NodeStatus::Succeeded);
    finished.output = Some(Ports::main(vec![]));
    ok!(store.save_node_execution(&a, &finished, E).await);
    ok!(store
        .save_node_execution(&a, &execution(r.id, "busy", NodeStatus::Running), E)
        .await);
    ok!(store
        .suspend_node(&a, &waiting(r.id, "wait", "form:y", Some(t0())), E)
        .await);

    let at = t0() + Duration::minutes(9);
    let ended = ok!(store
        .end_run(
            &a,
            r.id,
            RunStatus::Cancelled,
            "supplier withdrew",
            at,
            None
        )
        .await)
    .expect("the run exists");
    assert_eq!(ended.status, RunStatus::Cancelled);
    assert_eq!(ended.error.as_deref(), Some("supplier withdrew"));
    assert_eq!(ended.ended_at, Some(at));
    assert_eq!(ok!(store.run(&a, r.id).await), Some(ended.clone()));

    let statuses: Vec<NodeStatus> = ok!(store.node_executions(&a, r.id).await)
        .iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        statuses,
        [
            NodeStatus::Succeeded,
            NodeStatus::Cancelled,
            NodeStatus::Cancelled
        ]
    );
    assert_eq!(
        ok!(store.take_wait(&a, "form:y", Wakeup::Timer, None).await),
        None,
        "the wait is gone"
    );
    assert_eq!(ok!(store.next_due().await), None, "its timer is gone");

    let again = ok!(store
        .end_run(
            &a,
            r.id,
            RunStatus::Failed,
            "late",
            at + Duration::minutes(1),
            None
        )
        .await);
    assert_eq!(again, Some(ended), "an ended run is not changed again");
    assert_eq!(
        ok!(store
            .end_run(&a, RunId::new(), RunStatus::Cancelled, "x", at, None)
            .await),
        None
    );
}

/// A wake-up that comes before any node waits on its key is held,
/// tenant-scoped; the first suspension on the key takes it in the same
/// change (the node is saved woken, no wait is registered) and answers it.
/// A second wake-up while one is held keeps the first.
pub async fn a_wakeup_that_comes_first_is_held_for_the_suspension(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    assert_eq!(
        ok!(store
            .deliver(&a, &held("answer:1", json!({"n": 1})), None, None)
            .await),
        None
    );
    assert_eq!(
        ok!(store
            .deliver(&a, &held("answer:1", json!({"n": 2})), None, None)
            .await),
        None,
        "a second wake-up is dropped while one is held"
    );
    assert_eq!(
        ok!(store
            .deliver(&b, &held("answer:1", json!({"n": 3})), None, None)
            .await),
        None
    );
    let listed = ok!(store.held_wakeups(&a).await);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].key.as_str(), &listed[0].payload),
        ("answer:1", &json!({"n": 1}))
    );
    assert!(!listed[0].expired);

    let resumed = ok!(store
        .suspend_node(&a, &waiting(r.id, "ask", "answer:1", Some(t0())), E)
        .await)
    .expect("the suspension takes the wake-up held for its key");
    assert_eq!(resumed.wakeup_payload(), &json!({"n": 1}));
    assert_eq!(
        resumed.state,
        json!({"sent": 3}),
        "with the state the node suspended with"
    );
    let record = ok!(store.node_executions(&a, r.id).await).remove(0);
    assert_eq!(record.status, NodeStatus::Waiting);
    assert_eq!(record.wait, None, "no wait is registered");
    assert_eq!(
        record.resumed.as_deref(),
        Some(&resumed),
        "the record says it was woken"
    );
    assert!(
        ok!(store.take_wait(&a, "answer:1", Wakeup::Timer, None).await).is_none(),
        "no wait on the key"
    );
    assert!(
        ok!(store.due_waits(t0() + Duration::days(1), 10).await).is_empty(),
        "and no timer"
    );
    assert!(
        ok!(store.held_wakeups(&a).await).is_empty(),
        "the wake-up was taken"
    );
    assert_eq!(
        ok!(store.held_wakeups(&b).await).len(),
        1,
        "another tenant's wake-up on the same key is its own"
    );

    // With nothing held, a suspension registers its wait as before.
    let mut again = waiting(r.id, "ask", "answer:1", None);
    again.attempt = 2;
    assert_eq!(ok!(store.suspend_node(&a, &again, E).await), None);
    assert!(ok!(store.take_wait(&a, "answer:1", Wakeup::Timer, None).await).is_some());
}

/// A wake-up delivered while its wait is stored ends it, as `take_wait`
/// does, and holds nothing. Asked to, it takes the run's lease for the
/// deliverer in the same change, as `claim_run` would: not while another
/// engine holds it, and once it is free with a greater epoch.
pub async fn a_delivery_takes_a_stored_wait(store: &dyn Store) {
    let a = tenant_a();
    let mut r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .suspend_node(&a, &waiting(r.id, "ask", "answer:2", None), E)
        .await);
    r.status = RunStatus::Waiting;
    ok!(store.update_run(&r, E).await);
    let now = t0();
    let lease = crate::store::LeaseRequest {
        owner: "engine-2",
        until: now + Duration::minutes(1),
        now,
    };
    let woken = ok!(store
        .deliver(
            &a,
            &held("answer:2", json!({"ok": true})),
            Some(lease),
            None
        )
        .await)
    .expect("the stored wait is taken");
    let wait = woken.wait;
    assert_eq!((wait.run_id, wait.node_id.as_str()), (r.id, "ask"));
    assert_eq!(
        woken.epoch, None,
        "engine-1 holds the lease: the delivery takes the wait, not the lease"
    );
    assert_eq!(
        ok!(store
            .claim_run(&a, r.id, "engine-1", lease.until, now)
            .await),
        Some(E),
        "engine-1 keeps its lease"
    );
    let record = ok!(store.node_executions(&a, r.id).await).remove(0);
    assert_eq!(
        record
            .resumed
            .map(|resumed| resumed.wakeup_payload().clone()),
        Some(json!({"ok": true}))
    );
    assert_eq!(
        ok!(store.run(&a, r.id).await).map(|r| r.status),
        Some(RunStatus::Running),
        "the run is in flight again"
    );
    assert!(ok!(store.held_wakeups(&a).await).is_empty());

    // The run waits again, its lease given up: the next delivery takes it.
    let mut again = waiting(r.id, "ask", "answer:3", None);
    again.attempt = 2;
    ok!(store.suspend_node(&a, &again, E).await);
    ok!(store.release_run(r.id, "engine-1").await);
    let woken = ok!(store
        .deliver(&a, &held("answer:3", json!({"ok": 2})), Some(lease), None)
        .await)
    .expect("the stored wait is taken");
    let taken = woken.epoch.expect("a free lease is taken with the wait");
    assert!(taken > E, "the lease passed on: its epoch grew ({taken:?})");
    assert_eq!(
        ok!(store
            .claim_run(&a, r.id, "engine-1", lease.until, now)
            .await),
        None,
        "engine-2 holds the lease now"
    );
    assert_eq!(
        ok!(store
            .claim_run(&a, r.id, "engine-2", lease.until, now)
            .await),
        Some(taken),
        "and claiming it again keeps its epoch"
    );
    assert_eq!(
        ok!(store
            .deliver(&a, &held("answer:4", json!(null)), Some(lease), None)
            .await),
        None,
        "a wake-up held takes no lease"
    );
}

/// A held wake-up expires at its time: no suspension takes it any more,
/// it stays listed, marked expired, until discarded; a new wake-up on its
/// key replaces it.
pub async fn held_wakeups_expire_and_stay_listed_until_discarded(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .deliver(&a, &held("late:1", json!(1)), None, None)
        .await);
    ok!(store
        .deliver(&b, &held("late:2", json!(2)), None, None)
        .await);
    assert!(
        ok!(store.expire_wakeups(t0() + Duration::hours(23), 10).await).is_empty(),
        "not due yet"
    );
    let expired = ok!(store.expire_wakeups(t0() + Duration::days(1), 10).await);
    assert_eq!(
        expired
            .iter()
            .map(|(tenant, w)| (tenant.clone(), w.key.as_str(), w.expired))
            .collect::<Vec<_>>(),
        vec![(a.clone(), "late:1", true), (b.clone(), "late:2", true)]
    );
    assert!(
        ok!(store.expire_wakeups(t0() + Duration::days(2), 10).await).is_empty(),
        "each expires once"
    );
    let listed = ok!(store.held_wakeups(&a).await);
    assert_eq!(listed.len(), 1);
    assert!(listed[0].expired, "listed as expired");
    assert_eq!(
        ok!(store
            .suspend_node(&a, &waiting(r.id, "ask", "late:1", None), E)
            .await),
        None,
        "an expired wake-up is not taken"
    );
    assert!(ok!(store.take_wait(&a, "late:1", Wakeup::Timer, None).await).is_some());
    assert!(ok!(store.discard_wakeup(&a, "late:1").await));
    assert!(
        !ok!(store.discard_wakeup(&a, "late:1").await),
        "discarded once"
    );
    assert!(ok!(store.held_wakeups(&a).await).is_empty());

    ok!(store
        .deliver(&b, &held("late:2", json!("again")), None, None)
        .await);
    let listed = ok!(store.held_wakeups(&b).await);
    assert_eq!(
        (listed.len(), &listed[0].payload, listed[0].expired),
        (1, &json!("again"), false),
        "a new wake-up replaces an expired one"
    );
}
