//! Workflows, runs, their starts, settles and node records.

use super::*;

/// A version, once stored, cannot be stored again; both versions stay readable.
pub async fn workflow_versions_are_immutable(store: &dyn Store) {
    let a = tenant_a();
    let id = WorkflowId::new("onboarding");
    ok!(store
        .insert_workflow(&a, &workflow("onboarding", 1, "first"))
        .await);
    let err = store
        .insert_workflow(&a, &workflow("onboarding", 1, "changed"))
        .await
        .expect_err("storing version 1 twice must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    ok!(store
        .insert_workflow(&a, &workflow("onboarding", 2, "second"))
        .await);

    let v1 = ok!(store.workflow(&a, &id, Some(1)).await).expect("version 1 is stored");
    assert_eq!(v1.name, "first", "version 1 must keep its first content");
    let latest = ok!(store.workflow(&a, &id, None).await).expect("a latest version exists");
    assert_eq!((latest.version, latest.name.as_str()), (2, "second"));
    assert_eq!(ok!(store.workflow_versions(&a, &id).await), vec![1, 2]);
    assert_eq!(ok!(store.workflow(&a, &id, Some(3)).await), None);
    assert_eq!(
        ok!(store.workflow(&a, &WorkflowId::new("nope"), None).await),
        None
    );
}

/// `workflows` lists the latest version of each workflow, ordered by id.
pub async fn latest_versions_are_listed_per_workflow(store: &dyn Store) {
    let a = tenant_a();
    ok!(store
        .insert_workflow(&a, &workflow("b-flow", 1, "b1"))
        .await);
    ok!(store
        .insert_workflow(&a, &workflow("a-flow", 1, "a1"))
        .await);
    ok!(store
        .insert_workflow(&a, &workflow("a-flow", 2, "a2"))
        .await);
    let listed: Vec<(String, u32)> = ok!(store.workflows(&a).await)
        .into_iter()
        .map(|w| (w.id.to_string(), w.version))
        .collect();
    assert_eq!(
        listed,
        vec![("a-flow".to_string(), 2), ("b-flow".to_string(), 1)]
    );
}

/// Runs read back as written; `runs` filters by status and workflow, newest first, capped.
pub async fn runs_round_trip_and_filter_newest_first(store: &dyn Store) {
    let a = tenant_a();
    let old = run(&a, "w1", RunStatus::Succeeded, 0);
    let mid = run(&a, "w1", RunStatus::Waiting, 1);
    let mut new = run(&a, "w2", RunStatus::Waiting, 2);
    new.origin = Some(crate::run::RunOrigin {
        run: old.id,
        version: 1,
        from: vec![NodeId::new("b")],
        reused: vec![NodeId::new("a")],
    });
    for r in [&old, &mid, &new] {
        ok!(insert_leased(store, r).await);
    }
    assert_eq!(ok!(store.run(&a, mid.id).await).as_ref(), Some(&mid));
    assert_eq!(ok!(store.run(&a, new.id).await).as_ref(), Some(&new));
    assert_eq!(
        ok!(store.runs(&a, &RunFilter::all().workflow("w2")).await),
        vec![new.clone()]
    );

    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok!(store.runs(&a, &RunFilter::all()).await)),
        vec![new.id, mid.id, old.id]
    );
    assert_eq!(
        ids(ok!(store
            .runs(&a, &RunFilter::status(RunStatus::Waiting))
            .await)),
        vec![new.id, mid.id]
    );
    assert_eq!(
        ids(ok!(store
            .runs(&a, &RunFilter::status(RunStatus::Waiting).workflow("w1"))
            .await)),
        vec![mid.id]
    );
    assert_eq!(
        ids(ok!(store.runs(&a, &RunFilter::all().limit(1)).await)),
        vec![new.id]
    );

    let mut updated = mid.clone();
    updated.status = RunStatus::Succeeded;
    updated.ended_at = Some(t0() + Duration::hours(1));
    ok!(store.update_run(&updated, E).await);
    assert_eq!(ok!(store.run(&a, mid.id).await), Some(updated));
}

/// `runs` filters by version, creation time, error text (without case,
/// `%` and `_` taken literally) and parent, and pages on after a run, also
/// among runs created at the same instant.
pub async fn runs_filter_by_version_time_error_parent_and_page(store: &dyn Store) {
    let a = tenant_a();
    let parent = run(&a, "w", RunStatus::Waiting, 0);
    let mut failed = Vec::new();
    for (i, error) in ["SAP answered 503: Timed out", "100% wrong_field", "quota"]
        .into_iter()
        .enumerate()
    {
        let mut r = run(&a, "w", RunStatus::Failed, 10 + i as i64);
        r.workflow_version = if i == 2 { 2 } else { 1 };
        r.error = Some(error.into());
        failed.push(r);
    }
    let mut child = run(&a, "child", RunStatus::Waiting, 20);
    child.parent = Some(crate::run::RunParent {
        run: parent.id,
        node: NodeId::new("sub"),
    });
    // Five runs of the same instant, for paging.
    let same: Vec<Run> = (0..5)
        .map(|_| run(&a, "burst", RunStatus::Succeeded, 30))
        .collect();
    for r in [&parent, &child].into_iter().chain(&failed).chain(&same) {
        ok!(store.insert_run(r).await);
    }
    assert_eq!(ok!(store.run(&a, child.id).await).as_ref(), Some(&child));

    let ids = |runs: Vec<Run>| runs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let a = &a;
    let found = |filter: RunFilter| async move { ids(ok!(store.runs(a, &filter).await)) };
    let (f0, f1, f2) = (failed[0].id, failed[1].id, failed[2].id);
    assert_eq!(
        found(RunFilter::all().workflow("w").version(2)).await,
        vec![f2]
    );
    assert_eq!(
        found(
            RunFilter::status(RunStatus::Failed)
                .created_between(t0() + Duration::minutes(10), t0() + Duration::minutes(12))
        )
        .await,
        vec![f1, f0],
        "from inclusive, before exclusive"
    );
    assert_eq!(
        found(RunFilter::all().error_contains("timed OUT")).await,
        vec![f0]
    );
    assert_eq!(
        found(RunFilter::all().error_contains("0% w")).await,
        vec![f1]
    );
    assert!(
        found(RunFilter::all().error_contains("0_% "))
            .await
            .is_empty(),
        "`_` and `%` are literal"
    );
    assert!(found(RunFilter::all().error_contains("1%0"))
        .await
        .is_empty());
    assert_eq!(
        found(RunFilter::all().children_of(parent.id)).await,
        vec![child.id]
    );
    assert!(found(RunFilter::all().children_of(child.id))
        .await
        .is_empty());

    let mut expected: Vec<RunId> = same.iter().map(|r| r.id).collect();
    expected.sort();
    expected.reverse();
    let mut paged = Vec::new();
    let mut filter = RunFilter::all().workflow("burst").limit(2);
    loop {
        let page = ok!(store.runs(a, &filter).await);
        let Some(last) = page.last() else { break };
        filter = filter.after(last);
        paged.extend(page.iter().map(|r| r.id));
    }
    assert_eq!(
        paged, expected,
        "pages continue after the last run seen, by id within an instant"
    );
}

/// A run id is stored once.
pub async fn inserting_a_run_twice_conflicts(store: &dyn Store) {
    let r = run(&tenant_a(), "w", RunStatus::Pending, 0);
    ok!(store.insert_run(&r).await);
    let err = store
        .insert_run(&r)
        .await
        .expect_err("a second insert of the same run must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
}

/// Updating a run that is not stored is `NotFound`, not an insert.
pub async fn updating_an_unknown_run_is_not_found(store: &dyn Store) {
    let r = run(&tenant_a(), "w", RunStatus::Running, 0);
    let err = store
        .update_run(&r, E)
        .await
        .expect_err("updating an unknown run must fail");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    assert_eq!(ok!(store.run(&tenant_a(), r.id).await), None);
}

/// `start_run` stores the run, the starter's lease and the audit entry
/// together; a second start of the same id conflicts and changes none of them.
pub async fn starting_a_run_stores_it_leased_and_audited(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    let (now, until) = (t0(), t0() + Duration::seconds(30));
    let entry = start_leased(store, &r, "engine-1", until).await;
    assert_eq!(ok!(store.run(&a, r.id).await), Some(r.clone()));
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_none(),
        "the starter holds the lease"
    );
    assert_eq!(
        ok!(store.renew_leases("engine-1", &[r.id], until).await),
        vec![],
        "the starter renews its lease"
    );
    let audit = AuditFilter::default();
    assert_eq!(ok!(store.audit_log(&a, &audit).await), vec![entry.clone()]);

    let mut again = r.clone();
    again.status = RunStatus::Pending;
    let err = store
        .start_run(&RunStart {
            run: &again,
            owner: "engine-2",
            lease_until: until,
            audit: &entry,
        })
        .await
        .expect_err("a second start of the same run must conflict");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(ok!(store.run(&a, r.id).await), Some(r.clone()));
    assert_eq!(
        ok!(store.audit_log(&a, &audit).await).len(),
        1,
        "a refused start leaves no audit entry"
    );
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_none(),
        "a refused start takes no lease"
    );
}

/// `settle_run` stores the run and frees the caller's lease in one change;
/// it refuses, changing nothing, as `update_run` does.
pub async fn settling_a_run_stores_it_and_frees_the_lease(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    let (now, until) = (t0(), t0() + Duration::seconds(30));
    start_leased(store, &r, "engine-1", until).await;

    let mut waiting = r.clone();
    waiting.status = RunStatus::Waiting;
    ok!(store.settle_run(&waiting, "engine-1", E, &[]).await);
    assert_eq!(ok!(store.run(&a, r.id).await), Some(waiting.clone()));
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_some(),
        "the lease is free once the run settled"
    );

    let mut done = waiting.clone();
    done.status = RunStatus::Succeeded;
    done.ended_at = Some(t0() + Duration::minutes(5));
    // At the epoch engine-2's claim gave the lease, from an engine that
    // does not hold it.
    ok!(store
        .settle_run(&done, "engine-3", Epoch::new(2), &[])
        .await);
    assert_eq!(ok!(store.run(&a, r.id).await), Some(done.clone()));
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-4", until, now).await).is_none(),
        "settling frees only the caller's own lease"
    );

    let mut late = done.clone();
    late.status = RunStatus::Failed;
    let err = store
        .settle_run(&late, "engine-2", E, &[])
        .await
        .expect_err("an ended run keeps its status");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(ok!(store.run(&a, r.id).await), Some(done));
    assert!(
        ok!(store.claim_run(&a, r.id, "engine-4", until, now).await).is_none(),
        "a refused settle keeps the lease"
    );

    let unknown = run(&a, "w", RunStatus::Succeeded, 1);
    let err = store
        .settle_run(&unknown, "engine-1", E, &[])
        .await
        .expect_err("settling an unknown run must fail");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let mut other = waiting.clone();
    other.tenant = tenant_b();
    let err = store
        .settle_run(&other, "engine-2", E, &[])
        .await
        .expect_err("another tenant's run is not found");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
}

/// `settle_run` saves the steps it is given with the run, all or none: a
/// settle refused (fenced, or one step moving its node backwards) saves no
/// step and leaves the run as it was.
pub async fn settling_a_run_saves_its_steps_in_the_same_change(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    let until = t0() + Duration::seconds(30);
    start_leased(store, &r, "engine-1", until).await;
    ok!(store
        .save_node_execution(&a, &execution(r.id, "ended", NodeStatus::Succeeded), E)
        .await);
    let mut waiting_run = r.clone();
    waiting_run.status = RunStatus::Waiting;

    // A step that would move its node backwards refuses the whole settle.
    let mut backwards = execution(r.id, "ended", NodeStatus::Running);
    backwards.attempt = 1;
    let fresh = execution(r.id, "fresh", NodeStatus::Succeeded);
    let err = store
        .settle_run(&waiting_run, "engine-1", E, &[fresh.clone(), backwards])
        .await
        .expect_err("a step moving backwards refuses the settle");
    assert_eq!(err.kind(), StoreErrorKind::Regressed, "{err}");
    let records = ok!(store.node_executions(&a, r.id).await);
    assert!(
        records.iter().all(|e| e.node_id.as_str() != "fresh"),
        "no step of a refused settle is saved: {records:?}"
    );
    assert_eq!(
        ok!(store.run(&a, r.id).await).map(|r| r.status),
        Some(RunStatus::Running)
    );

    // At a stale epoch: fenced, nothing saved.
    let err = store
        .settle_run(
            &waiting_run,
            "engine-1",
            Epoch::new(7),
            std::slice::from_ref(&fresh),
        )
        .await
        .expect_err("a stale epoch is fenced");
    assert_eq!(err.kind(), StoreErrorKind::Fenced, "{err}");
    let records = ok!(store.node_executions(&a, r.id).await);
    assert!(records.iter().all(|e| e.node_id.as_str() != "fresh"));

    let skipped = execution(r.id, "skipped", NodeStatus::Skipped);
    ok!(store
        .settle_run(&waiting_run, "engine-1", E, &[fresh.clone(), skipped])
        .await);
    let records = ok!(store.node_executions(&a, r.id).await);
    let names: Vec<&str> = records.iter().map(|e| e.node_id.as_str()).collect();
    assert_eq!(
        names,
        ["ended", "fresh", "skipped"],
        "saved with the settle, in order"
    );
    assert_eq!(ok!(store.run(&a, r.id).await), Some(waiting_run));
}

/// One record per node and run: saving again replaces it; order is first-save order.
pub async fn node_executions_are_replaced_per_node(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .save_node_execution(&a, &execution(r.id, "first", NodeStatus::Running), E)
        .await);
    ok!(store
        .save_node_execution(&a, &execution(r.id, "second", NodeStatus::Running), E)
        .await);
    let mut done = execution(r.id, "first", NodeStatus::Failed);
    done.attempt = 3;
    done.error =
        Some(NodeError::retryable("ERP answered 503").with_details(json!({"status": 503})));
    done.output = Some(Ports::new().with("error", vec![]));
    done.ended_at = Some(t0() + Duration::seconds(5));
    ok!(store.save_node_execution(&a, &done, E).await);

    let records = ok!(store.node_executions(&a, r.id).await);
    let nodes: Vec<&str> = records.iter().map(|e| e.node_id.as_str()).collect();
    assert_eq!(nodes, ["first", "second"]);
    assert_eq!(
        records[0], done,
        "the second save of a node replaces the first, field for field"
    );
}

/// `runs_in_flight` returns pending and running runs of every tenant, and
/// waiting runs with a node whose wait was taken.
pub async fn runs_in_flight_span_tenants(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let pending = run(&a, "w", RunStatus::Pending, 0);
    let running = run(&b, "w", RunStatus::Running, 1);
    let waiting_run = run(&a, "w", RunStatus::Waiting, 2);
    let done = run(&b, "w", RunStatus::Succeeded, 3);
    let woken = run(&a, "w", RunStatus::Waiting, 4);
    for r in [&pending, &running, &waiting_run, &done, &woken] {
        ok!(insert_leased(store, r).await);
    }
    ok!(store
        .suspend_node(&a, &waiting(waiting_run.id, "wait", "k-quiet", None), E)
        .await);
    ok!(store
        .suspend_node(&a, &waiting(woken.id, "wait", "k-woken", None), E)
        .await);
    // As an engine that stopped right after the wait was taken leaves it.
    ok!(store.take_wait(&a, "k-woken", Wakeup::Timer, None).await);
    let mut again = ok!(store.run(&a, woken.id).await).expect("run is stored");
    again.status = RunStatus::Waiting;
    ok!(store.update_run(&again, E).await);

    let mut in_flight = ok!(store.runs_in_flight().await);
    in_flight.sort_by_key(|(_, id)| *id);
    let mut expected = vec![
        (a.clone(), pending.id),
        (b.clone(), running.id),
        (a.clone(), woken.id),
    ];
    expected.sort_by_key(|(_, id)| *id);
    assert_eq!(in_flight, expected);
}

/// A waiting run moves to another version with its node records and waits
/// renamed and the audit entry, in one change, once: not after a wake-up,
/// not for another tenant.
pub async fn a_waiting_run_migrates_once_with_its_nodes_renamed(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let r = run(&a, "w", RunStatus::Waiting, 0);
    ok!(insert_leased(store, &r).await);
    let mut done = execution(r.id, "fetch", NodeStatus::Succeeded);
    done.output = Some(Ports::main(Vec::new()));
    ok!(store.save_node_execution(&a, &done, E).await);
    ok!(store
        .suspend_node(
            &a,
            &waiting(r.id, "ask", "answer:1", Some(t0() + Duration::days(3))),
            E
        )
        .await);
    let mut entry = start_entry(&r);
    entry.action = AuditAction::Update;
    let renames = [(NodeId::new("ask"), NodeId::new("ask-supplier"))];
    let migration = crate::store::RunMigration {
        tenant: &a,
        run: r.id,
        from_version: 1,
        to_version: 2,
        renames: &renames,
        audit: &entry,
    };
    let err = store
        .migrate_run(&crate::store::RunMigration {
            tenant: &b,
            ..migration
        })
        .await
        .expect_err("another tenant's run is not found");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    ok!(store.migrate_run(&migration).await);

    let moved = ok!(store.run(&a, r.id).await).expect("the run is stored");
    assert_eq!(
        (moved.workflow_version, moved.status),
        (2, RunStatus::Waiting)
    );
    let nodes = ok!(store.node_executions(&a, r.id).await);
    let ids: Vec<&str> = nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(
        ids,
        ["fetch", "ask-supplier"],
        "renamed in place, in the same order"
    );
    assert_eq!(
        nodes[1].wait.as_ref().map(|w| w.node_id.as_str()),
        Some("ask-supplier")
    );
    assert!(ok!(store.audit_log(&a, &AuditFilter::default()).await).contains(&entry));

    let err = store
        .migrate_run(&migration)
        .await
        .expect_err("the run no longer waits on version 1");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");

    // The wait, still under its key, now belongs to the renamed node; once
    // taken, the run is no longer waiting and does not move.
    let wait = ok!(store
        .take_wait(
            &a,
            "answer:1",
            Wakeup::Event {
                key: "answer:1".into(),
                payload: json!({})
            },
            None
        )
        .await)
    .expect("the wait is still there");
    assert_eq!(wait.node_id.as_str(), "ask-supplier");
    let back = crate::store::RunMigration {
        from_version: 2,
        to_version: 1,
        renames: &[],
        ..migration
    };
    let err = store
        .migrate_run(&back)
        .await
        .expect_err("a woken run does not move");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
}
