//! Concurrent writes, each answered on its own; ended runs take no writes.

use super::*;

/// Once a run has ended, nothing writes into it any more: not its status,
/// not its nodes, not a new wait.
pub async fn an_ended_run_takes_no_more_writes(store: &dyn Store) {
    let a = tenant_a();
    let r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .end_run(&a, r.id, RunStatus::Cancelled, "stopped", t0(), None)
        .await);

    let mut late = r.clone();
    late.status = RunStatus::Succeeded;
    let err = store
        .update_run(&late, E)
        .await
        .expect_err("an ended run keeps its status");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let err = store
        .save_node_execution(&a, &execution(r.id, "late", NodeStatus::Succeeded), E)
        .await
        .expect_err("an ended run takes no node records");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let err = store
        .suspend_node(&a, &waiting(r.id, "late", "late-key", None), E)
        .await
        .expect_err("an ended run takes no waits");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        ok!(store.run(&a, r.id).await).map(|r| r.status),
        Some(RunStatus::Cancelled)
    );
    assert!(ok!(store.node_executions(&a, r.id).await).is_empty());
}

/// Node writes made at the same moment (a store may commit them together)
/// each get their own answer: one into an ended run is refused, the others
/// are saved as written.
pub async fn concurrent_node_writes_each_get_their_own_answer(store: &dyn Store) {
    let a = tenant_a();
    let open = run(&a, "w", RunStatus::Running, 0);
    let ended = run(&a, "w", RunStatus::Running, 1);
    ok!(insert_leased(store, &open).await);
    ok!(insert_leased(store, &ended).await);
    ok!(store
        .end_run(&a, ended.id, RunStatus::Failed, "gave up", t0(), None)
        .await);

    let mut writes: Vec<NodeExecution> = (0..20)
        .map(|i| {
            let mut exec = execution(open.id, &format!("n{i}"), NodeStatus::Succeeded);
            exec.attempt = i + 1;
            exec.output = Some(Ports::main(vec![json!({ "i": i })
                .as_object()
                .cloned()
                .unwrap_or_default()]));
            exec
        })
        .collect();
    writes.insert(7, execution(ended.id, "late", NodeStatus::Succeeded));
    let answers =
        futures_util::future::join_all(writes.iter().map(|w| store.save_node_execution(&a, w, E)))
            .await;

    for (write, answer) in writes.iter().zip(&answers) {
        if write.run_id == ended.id {
            let err = answer
                .as_ref()
                .expect_err("an ended run takes no node records");
            assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
        } else if let Err(err) = answer {
            panic!(
                "saving {} failed beside a refused write: {err}",
                write.node_id
            );
        }
    }
    let mut saved = ok!(store.node_executions(&a, open.id).await);
    saved.sort_by_key(|e| e.attempt);
    assert_eq!(saved.len(), 20, "every write into the open run is kept");
    for (i, exec) in saved.iter().enumerate() {
        assert_eq!(exec.node_id.as_str(), format!("n{i}"));
        assert_eq!(exec.output, writes[if i < 7 { i } else { i + 1 }].output);
    }
    assert!(ok!(store.node_executions(&a, ended.id).await).is_empty());

    // Again without a refused write: every record replaced in one go.
    writes.retain(|w| w.run_id == open.id);
    for exec in &mut writes {
        exec.status = NodeStatus::Failed;
    }
    let answers =
        futures_util::future::join_all(writes.iter().map(|w| store.save_node_execution(&a, w, E)))
            .await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let saved = ok!(store.node_executions(&a, open.id).await);
    assert_eq!(saved.len(), 20);
    assert!(saved.iter().all(|e| e.status == NodeStatus::Failed));
}

/// Starts, settles and node writes made at the same moment (a store may
/// commit them together) each get their own answer: a refused one changes
/// nothing and takes none of the others down.
pub async fn concurrent_run_writes_each_get_their_own_answer(store: &dyn Store) {
    let a = tenant_a();
    let (now, until) = (t0(), t0() + Duration::seconds(30));
    let (existing, ended) = stored_and_ended(store, &a).await;
    let open = run(&a, "w", RunStatus::Running, 2);
    ok!(insert_leased(store, &open).await);
    let fresh: Vec<Run> = (0..5)
        .map(|i| run(&a, "w", RunStatus::Running, 10 + i))
        .collect();
    let entries: Vec<AuditEntry> = fresh.iter().chain([&existing]).map(start_entry).collect();
    let mut settled = open.clone();
    settled.status = RunStatus::Waiting;
    let mut late = ended.clone();
    late.status = RunStatus::Succeeded;
    let nodes: Vec<NodeExecution> = (0..5)
        .map(|i| execution(open.id, &format!("n{i}"), NodeStatus::Succeeded))
        .collect();

    let order: Vec<&Run> = fresh.iter().chain([&existing]).collect();
    let starts = leased_starts(&order, &entries, "engine-1", until);
    let (started, (settles, saves)) = futures_util::future::join(
        futures_util::future::join_all(starts.iter().map(|start| store.start_run(start))),
        futures_util::future::join(
            futures_util::future::join_all([
                store.settle_run(&settled, "engine-1", E, &[]),
                store.settle_run(&late, "engine-1", E, &[]),
            ]),
            futures_util::future::join_all(
                nodes.iter().map(|e| store.save_node_execution(&a, e, E)),
            ),
        ),
    )
    .await;

    for (r, answer) in fresh.iter().zip(&started) {
        assert!(
            answer.is_ok(),
            "starting {} failed beside a refused one: {answer:?}",
            r.id
        );
        assert_eq!(ok!(store.run(&a, r.id).await).as_ref(), Some(r));
        assert!(ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_none());
    }
    let err = started[5].as_ref().expect_err("a run id is started once");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(settles[0].is_ok(), "{:?}", settles[0]);
    let err = settles[1]
        .as_ref()
        .expect_err("an ended run keeps its status");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(saves.iter().all(Result::is_ok), "{saves:?}");

    assert_eq!(ok!(store.run(&a, open.id).await), Some(settled));
    assert_eq!(
        ok!(store.run(&a, existing.id).await),
        Some(existing.clone())
    );
    assert_eq!(
        ok!(store.run(&a, ended.id).await).map(|r| r.status),
        Some(RunStatus::Failed)
    );
    assert_eq!(ok!(store.node_executions(&a, open.id).await).len(), 5);
    let audit = ok!(store.audit_log(&a, &AuditFilter::default()).await);
    assert_eq!(
        audit.len(),
        5,
        "one entry per start that was stored: {audit:?}"
    );
    assert!(!audit.iter().any(|e| e.entity_id == existing.id.to_string()));

    // Again without a refused write: starts, settles and node writes in one go.
    let more: Vec<Run> = (0..5)
        .map(|i| run(&a, "w", RunStatus::Running, 20 + i))
        .collect();
    let more_entries: Vec<AuditEntry> = more.iter().map(start_entry).collect();
    let order: Vec<&Run> = more.iter().collect();
    let starts = leased_starts(&order, &more_entries, "engine-2", until);
    let done = succeeded(&fresh, now + Duration::minutes(1));
    let nodes: Vec<NodeExecution> = fresh
        .iter()
        .map(|r| execution(r.id, "last", NodeStatus::Succeeded))
        .collect();
    let (started, (settles, saves)) = futures_util::future::join(
        futures_util::future::join_all(starts.iter().map(|start| store.start_run(start))),
        futures_util::future::join(
            futures_util::future::join_all(
                done.iter().map(|r| store.settle_run(r, "engine-1", E, &[])),
            ),
            futures_util::future::join_all(
                nodes.iter().map(|e| store.save_node_execution(&a, e, E)),
            ),
        ),
    )
    .await;
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    assert!(settles.iter().all(Result::is_ok), "{settles:?}");
    // A node write beside its run's settle may land before or after it.
    assert!(
        saves.iter().all(|s| match s {
            Ok(()) => true,
            Err(err) => err.kind() == StoreErrorKind::Conflict,
        }),
        "{saves:?}"
    );
    for (r, settled) in fresh.iter().zip(&done) {
        assert_eq!(ok!(store.run(&a, r.id).await).as_ref(), Some(settled));
        assert!(
            ok!(store.claim_run(&a, r.id, "engine-3", until, now).await).is_some(),
            "a settled run's lease is free"
        );
    }
    for r in &more {
        assert_eq!(ok!(store.run(&a, r.id).await).as_ref(), Some(r));
        assert!(ok!(store.claim_run(&a, r.id, "engine-3", until, now).await).is_none());
    }
    assert_eq!(
        ok!(store.audit_log(&a, &AuditFilter::default()).await).len(),
        10
    );
}

/// Starts made at the same moment, then settles made at the same moment
/// (a store may write a group of one kind in one statement), each get their
/// own answer: a refused one changes nothing and takes none of the others
/// down; a group without a refused write is stored whole.
pub async fn concurrent_starts_and_settles_each_get_their_own_answer(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let (now, until) = (t0(), t0() + Duration::seconds(30));
    let (existing, ended) = stored_and_ended(store, &a).await;
    let fresh: Vec<Run> = (0..8)
        .map(|i| run(&a, "w", RunStatus::Running, 10 + i))
        .collect();
    // Starts, one of them of a run stored already.
    let order: Vec<&Run> = fresh[..4]
        .iter()
        .chain([&existing])
        .chain(&fresh[4..])
        .collect();
    let started = start_together(store, &order, until).await;
    for (r, answer) in order.iter().zip(&started) {
        if r.id == existing.id {
            let err = answer.as_ref().expect_err("a run id is started once");
            assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
        } else {
            assert!(
                answer.is_ok(),
                "starting {} beside a refused start: {answer:?}",
                r.id
            );
            assert_eq!(ok!(store.run(&a, r.id).await).as_ref(), Some(*r));
            assert!(
                ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_none(),
                "the starter holds the lease of {}",
                r.id
            );
        }
    }
    assert_eq!(
        ok!(store.run(&a, existing.id).await),
        Some(existing.clone())
    );
    let audit = ok!(store.audit_log(&a, &AuditFilter::default()).await);
    assert_eq!(audit.len(), 8, "one entry per stored start: {audit:?}");
    assert!(!audit.iter().any(|e| e.entity_id == existing.id.to_string()));

    // Settles, one of an ended run and one of another tenant's.
    let done = succeeded(&fresh, now + Duration::minutes(1));
    let late = Run {
        status: RunStatus::Succeeded,
        ..ended.clone()
    };
    let stranger = Run {
        tenant: b.clone(),
        ..done[0].clone()
    };
    let order: Vec<&Run> = done[..3]
        .iter()
        .chain([&late])
        .chain(&done[3..6])
        .chain([&stranger])
        .chain(&done[6..])
        .collect();
    let settles = futures_util::future::join_all(
        order
            .iter()
            .map(|r| store.settle_run(r, "engine-1", E, &[])),
    )
    .await;
    for (r, answer) in order.iter().zip(&settles) {
        if r.id == ended.id {
            let err = answer.as_ref().expect_err("an ended run keeps its status");
            assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
        } else if r.tenant == b {
            let err = answer
                .as_ref()
                .expect_err("another tenant's run is not found");
            assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
        } else {
            assert!(
                answer.is_ok(),
                "settling {} beside a refused settle: {answer:?}",
                r.id
            );
        }
    }
    for settled in &done {
        assert_eq!(ok!(store.run(&a, settled.id).await).as_ref(), Some(settled));
    }
    assert_eq!(
        ok!(store.run(&a, ended.id).await).map(|r| r.status),
        Some(RunStatus::Failed)
    );

    // Again without a refused write: every start, then every settle, stored.
    let more: Vec<Run> = (0..8)
        .map(|i| run(&a, "w", RunStatus::Running, 20 + i))
        .collect();
    let started = start_together(store, &more.iter().collect::<Vec<_>>(), until).await;
    assert!(started.iter().all(Result::is_ok), "{started:?}");
    let waiting: Vec<Run> = more
        .iter()
        .map(|r| Run {
            status: RunStatus::Waiting,
            ..r.clone()
        })
        .collect();
    let settles = futures_util::future::join_all(
        waiting
            .iter()
            .map(|r| store.settle_run(r, "engine-1", E, &[])),
    )
    .await;
    assert!(settles.iter().all(Result::is_ok), "{settles:?}");
    for r in &waiting {
        assert_eq!(ok!(store.run(&a, r.id).await).as_ref(), Some(r));
        assert!(
            ok!(store.claim_run(&a, r.id, "engine-2", until, now).await).is_some(),
            "the settler gave up its lease of {}",
            r.id
        );
    }
    assert_eq!(
        ok!(store.audit_log(&a, &AuditFilter::default()).await).len(),
        16
    );
}

/// Deliveries made at once (one group commit, on a store that groups
/// writes) each get their own answer: a wait taken, with the run's lease
/// when it was free, or the wake-up held. Of two on one key, one wakes the
/// node and the other is held. Each writes its audit entry with it.
pub async fn concurrent_deliveries_each_get_their_own_answer(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let mut runs = Vec::new();
    for i in 0..12 {
        let mut r = run(&a, "w", RunStatus::Running, i);
        ok!(insert_leased(store, &r).await);
        ok!(store
            .suspend_node(&a, &waiting(r.id, "ask", &format!("k{i}"), None), E)
            .await);
        r.status = RunStatus::Waiting;
        ok!(store.update_run(&r, E).await);
        if i % 2 == 0 {
            ok!(store.release_run(r.id, "engine-1").await);
        }
        runs.push(r);
    }
    let now = t0();
    let lease = crate::store::LeaseRequest {
        owner: "engine-2",
        until: now + Duration::minutes(1),
        now,
    };
    let mut calls: Vec<(TenantId, crate::store::HeldWakeup)> = (0..12)
        .map(|i| (a.clone(), held(&format!("k{i}"), json!({ "i": i }))))
        .collect();
    calls.insert(5, (a.clone(), held("k0", json!("again"))));
    calls.insert(9, (b.clone(), held("k1", json!("b"))));
    calls.push((a.clone(), held("h1", json!("early"))));
    let audit = crate::store::DeliveryAudit {
        at: now,
        actor: Some("deliverer".into()),
    };
    let answers = futures_util::future::join_all(
        calls
            .iter()
            .map(|(tenant, wakeup)| store.deliver(tenant, wakeup, Some(lease), Some(&audit))),
    )
    .await;

    let mut woke_k0 = 0;
    for ((tenant, wakeup), answer) in calls.iter().zip(answers) {
        let answer = ok!(answer);
        let i = wakeup.key[1..].parse::<usize>().ok();
        match (tenant == &a, wakeup.key.as_str(), answer) {
            (true, "k0", Some(woken)) => {
                woke_k0 += 1;
                assert_eq!(woken.wait.run_id, runs[0].id);
            }
            (true, "k0", None) => {}
            (true, "h1", None) | (false, "k1", None) => {}
            (true, _, Some(woken)) => {
                let i = i.expect("a key k<i>");
                assert_eq!(
                    (woken.wait.run_id, woken.wait.node_id.as_str()),
                    (runs[i].id, "ask"),
                    "k{i} ends its own run's wait"
                );
                match woken.epoch {
                    Some(epoch) => assert!(i % 2 == 0 && epoch > E, "k{i}: {epoch:?}"),
                    None => assert!(i % 2 == 1, "k{i}: its run's lease was free"),
                }
            }
            (_, key, answer) => panic!("{tenant}/{key}: unexpected answer {answer:?}"),
        }
    }
    assert_eq!(woke_k0, 1, "one of the two wake-ups on k0 woke its node");
    // Each delivery wrote its audit entry with it: a run resumed for each
    // wait taken, a wake-up held for the others, in its own tenant.
    let audited = |tenant: TenantId, kind: &'static str| async move {
        let filter = crate::store::AuditFilter {
            entity_type: Some(kind.into()),
            ..Default::default()
        };
        ok!(store.audit_log(&tenant, &filter).await)
    };
    let resumed = audited(a.clone(), "run").await;
    assert_eq!(resumed.len(), 12, "{resumed:?}");
    assert!(resumed
        .iter()
        .all(|e| e.action == crate::store::AuditAction::Resume
            && e.actor.as_deref() == Some("deliverer")));
    let mut held_keys: Vec<String> = audited(a.clone(), "wake-up")
        .await
        .into_iter()
        .map(|e| e.entity_id)
        .collect();
    held_keys.sort();
    assert_eq!(held_keys, ["h1", "k0"]);
    assert_eq!(audited(b.clone(), "wake-up").await.len(), 1);
    for (i, r) in runs.iter().enumerate() {
        let record = ok!(store.node_executions(&a, r.id).await).remove(0);
        let payload = record.resumed.map(|r| r.wakeup_payload().clone());
        if i > 0 {
            assert_eq!(
                payload,
                Some(json!({ "i": i })),
                "k{i}'s node saw its own wake-up"
            );
        } else {
            assert!(payload.is_some(), "k0's node was woken");
        }
        assert_eq!(
            ok!(store.run(&a, r.id).await).map(|r| r.status),
            Some(RunStatus::Running),
            "run {i} is in flight again"
        );
    }
    let mut held_a: Vec<String> = ok!(store.held_wakeups(&a).await)
        .into_iter()
        .map(|h| h.key)
        .collect();
    held_a.sort();
    assert_eq!(held_a, vec!["h1".to_string(), "k0".to_string()]);
    let held_b: Vec<String> = ok!(store.held_wakeups(&b).await)
        .into_iter()
        .map(|h| h.key)
        .collect();
    assert_eq!(held_b, vec!["k1".to_string()]);
}
