//! The audit log, and tenants kept apart.

use super::*;

/// Audit entries read back newest first, filtered by entity and time.
pub async fn audit_entries_filter_newest_first(store: &dyn Store) {
    let a = tenant_a();
    let entry = |minutes: i64, entity_id: &str, action: AuditAction| AuditEntry {
        tenant: a.clone(),
        at: t0() + Duration::minutes(minutes),
        actor: Some("alice".into()),
        action,
        entity_type: "workflow".into(),
        entity_id: entity_id.into(),
        details: json!({"version": minutes}),
    };
    ok!(store
        .append_audit(&entry(0, "w1", AuditAction::Create))
        .await);
    ok!(store
        .append_audit(&entry(1, "w2", AuditAction::Create))
        .await);
    ok!(store
        .append_audit(&entry(2, "w1", AuditAction::Update))
        .await);

    let all = ok!(store.audit_log(&a, &AuditFilter::default()).await);
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        [2, 1, 0].map(|m| t0() + Duration::minutes(m))
    );
    assert_eq!(
        all[0],
        entry(2, "w1", AuditAction::Update),
        "entries read back field for field"
    );
    let w1 = ok!(store
        .audit_log(&a, &AuditFilter::entity("workflow", "w1"))
        .await);
    assert_eq!(
        w1.iter().map(|e| e.action).collect::<Vec<_>>(),
        [AuditAction::Update, AuditAction::Create]
    );
    let recent = AuditFilter {
        since: Some(t0() + Duration::minutes(1)),
        limit: Some(1),
        ..AuditFilter::default()
    };
    assert_eq!(
        ok!(store.audit_log(&a, &recent).await),
        vec![entry(2, "w1", AuditAction::Update)]
    );
}

/// Nothing of tenant A is returned or changed by calls made as tenant B.
pub async fn tenants_never_see_each_other(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let id = WorkflowId::new("shared-name");
    ok!(store
        .insert_workflow(&a, &workflow("shared-name", 1, "A's"))
        .await);
    assert_eq!(ok!(store.workflow(&b, &id, None).await), None);
    assert!(ok!(store.workflow_versions(&b, &id).await).is_empty());
    assert!(ok!(store.workflows(&b).await).is_empty());
    ok!(store
        .insert_workflow(&b, &workflow("shared-name", 1, "B's"))
        .await);
    assert_eq!(
        ok!(store.workflow(&a, &id, None).await).map(|w| w.name),
        Some("A's".to_string())
    );

    let r = run(&a, "w", RunStatus::Waiting, 0);
    ok!(insert_leased(store, &r).await);
    ok!(store
        .suspend_node(&a, &waiting(r.id, "n", "secret-key", None), E)
        .await);
    assert_eq!(ok!(store.run(&b, r.id).await), None);
    assert!(ok!(store.runs(&b, &RunFilter::all()).await).is_empty());
    assert!(ok!(store.node_executions(&b, r.id).await).is_empty());
    assert_eq!(
        ok!(store.take_wait(&b, "secret-key", Wakeup::Timer, None).await),
        None
    );
    assert_eq!(
        ok!(store
            .end_run(&b, r.id, RunStatus::Cancelled, "x", t0(), None)
            .await),
        None
    );
    let mut hijack = r.clone();
    hijack.tenant = b.clone();
    hijack.status = RunStatus::Cancelled;
    assert!(
        store.update_run(&hijack, E).await.is_err(),
        "B cannot update A's run"
    );
    assert!(
        store
            .save_node_execution(&b, &execution(r.id, "n", NodeStatus::Succeeded), E)
            .await
            .is_err(),
        "B cannot write node records into A's run"
    );
    ok!(store
        .append_audit(&AuditEntry {
            tenant: a.clone(),
            at: t0(),
            actor: None,
            action: AuditAction::Execute,
            entity_type: "run".into(),
            entity_id: r.id.to_string(),
            details: json!(null),
        })
        .await);
    assert!(ok!(store.audit_log(&b, &AuditFilter::default()).await).is_empty());

    assert_eq!(
        ok!(store.run(&a, r.id).await),
        Some(r.clone()),
        "A's run is unchanged"
    );
    let records = ok!(store.node_executions(&a, r.id).await);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].status,
        NodeStatus::Waiting,
        "A's node is unchanged"
    );
    assert!(
        ok!(store.take_wait(&a, "secret-key", Wakeup::Timer, None).await).is_some(),
        "A's wait is intact"
    );
}

/// Random store calls made as tenant B, many aimed at tenant A's ids (its
/// run ids, wait keys, workflow id), never return anything of A's and leave
/// A's records as they were. The sequence comes from a seed, named in any
/// failure; `CONCERTMASTER_ISOLATION_SEED` replays one.
pub async fn tenants_stay_apart_under_random_calls(store: &dyn Store) {
    const CALLS: usize = 400;
    let (a, b) = (tenant_a(), tenant_b());
    let seed = std::env::var("CONCERTMASTER_ISOLATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);

    ok!(store
        .insert_workflow(&a, &workflow("shared", 1, "A's"))
        .await);
    let mut a_runs = Vec::new();
    let mut a_keys = Vec::new();
    for (i, status) in [RunStatus::Waiting, RunStatus::Running, RunStatus::Succeeded]
        .into_iter()
        .enumerate()
    {
        let mut r = run(&a, "shared", RunStatus::Running, i as i64);
        ok!(insert_leased(store, &r).await);
        ok!(store
            .save_node_execution(&a, &execution(r.id, "start", NodeStatus::Succeeded), E)
            .await);
        if status == RunStatus::Waiting {
            let key = format!("a-key-{i}");
            ok!(store
                .suspend_node(&a, &waiting(r.id, "ask", &key, Some(t0())), E)
                .await);
            a_keys.push(key);
        }
        r.status = status;
        ok!(store.update_run(&r, E).await);
        a_runs.push(r.id);
    }
    ok!(store
        .append_audit(&AuditEntry {
            tenant: a.clone(),
            at: t0(),
            actor: Some("a-admin".into()),
            action: AuditAction::Create,
            entity_type: "workflow".into(),
            entity_id: "shared".into(),
            details: json!({"secret": "a"}),
        })
        .await);
    let before = tenant_snapshot(store, &a).await;

    let mut b_runs: Vec<RunId> = Vec::new();
    let shared = WorkflowId::new("shared");
    for call in 0..CALLS {
        let context = format!("seed {seed}, call {call}");
        // Half the time an id of A's, else one of B's own or a new one.
        let target = if rng.bool() || b_runs.is_empty() {
            a_runs[rng.usize(..a_runs.len())]
        } else {
            b_runs[rng.usize(..b_runs.len())]
        };
        let key = if rng.bool() {
            a_keys[rng.usize(..a_keys.len())].clone()
        } else {
            format!("b-key-{}", rng.u8(..4))
        };
        match rng.u8(..14) {
            0 => {
                if let Some(w) = ok!(store.workflow(&b, &shared, None).await) {
                    assert_eq!(w.name, "B's", "{context}: workflow read");
                }
            }
            1 => {
                let versions = ok!(store.workflow_versions(&b, &shared).await);
                let mine = ok!(store.workflows(&b).await);
                assert!(
                    versions.len() <= 1 && mine.iter().all(|w| w.name == "B's"),
                    "{context}: workflows listed {versions:?} {mine:?}"
                );
            }
            2 => {
                let _ = store
                    .insert_workflow(&b, &workflow("shared", 1, "B's"))
                    .await;
            }
            3 => {
                let found = ok!(store.run(&b, target).await);
                assert!(found.is_none_or(|r| r.tenant == b), "{context}: run read");
            }
            4 => {
                let runs = ok!(store.runs(&b, &RunFilter::all()).await);
                assert!(runs.iter().all(|r| r.tenant == b), "{context}: runs listed");
            }
            5 => {
                let nodes = ok!(store.node_executions(&b, target).await);
                assert!(
                    !a_runs.contains(&target) || nodes.is_empty(),
                    "{context}: A's node records read"
                );
            }
            6 => {
                let mut hijack = run(&b, "shared", RunStatus::Cancelled, 9);
                hijack.id = target;
                let _ = store.update_run(&hijack, E).await;
            }
            7 => {
                let node = if rng.bool() { "start" } else { "ask" };
                let _ = store
                    .save_node_execution(&b, &execution(target, node, NodeStatus::Failed), E)
                    .await;
            }
            8 => {
                let ended = store
                    .end_run(&b, target, RunStatus::Cancelled, "by B", t0(), None)
                    .await;
                if let Ok(Some(r)) = ended {
                    assert_eq!(r.tenant, b, "{context}: end_run returned A's run");
                }
            }
            9 => {
                let taken = ok!(store.take_wait(&b, &key, Wakeup::Timer, None).await);
                assert!(
                    taken.is_none_or(|wait| !a_runs.contains(&wait.run_id)),
                    "{context}: took A's wait {key}"
                );
            }
            10 => {
                let _ = store
                    .suspend_node(&b, &waiting(target, "ask", &key, Some(t0())), E)
                    .await;
            }
            11 => {
                let entries = ok!(store.audit_log(&b, &AuditFilter::default()).await);
                assert!(
                    entries.iter().all(|e| e.tenant == b),
                    "{context}: audit read"
                );
            }
            12 => {
                ok!(store
                    .append_audit(&AuditEntry {
                        tenant: b.clone(),
                        at: t0(),
                        actor: None,
                        action: AuditAction::Execute,
                        entity_type: "run".into(),
                        entity_id: target.to_string(),
                        details: json!(null),
                    })
                    .await);
            }
            _ => {
                // A run of B's own, sometimes under an id A already uses.
                let mut mine = run(&b, "shared", RunStatus::Waiting, 5);
                if rng.bool() {
                    mine.id = target;
                }
                if insert_leased(store, &mine).await.is_ok() && !a_runs.contains(&mine.id) {
                    b_runs.push(mine.id);
                }
            }
        }
    }

    assert_eq!(
        tenant_snapshot(store, &a).await,
        before,
        "seed {seed}: A's records changed under B's calls"
    );
    for key in &a_keys {
        assert!(
            ok!(store.take_wait(&a, key, Wakeup::Timer, None).await).is_some(),
            "seed {seed}: A's wait {key} is gone"
        );
    }
}
