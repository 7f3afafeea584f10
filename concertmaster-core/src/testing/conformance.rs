//! The store conformance suite: what every `Store` must do, one function per case.
//!
//! Run it with [`store_conformance!`](crate::store_conformance). Each case
//! takes a fresh store and panics with a message naming the broken rule.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;

use crate::form::{
    FormLink, FormResponse, FormSchema, ResponseFilter, Review, ReviewStatus, Submitter,
};
use crate::ids::{FormId, NodeId, ResponseId, RunId, TenantId, WorkflowId};
use crate::item::Ports;
use crate::node::{NodeError, Wakeup};
use crate::run::{NodeExecution, NodeStatus, Run, RunFilter, RunStatus, Wait};
use crate::store::{
    AuditAction, AuditEntry, AuditFilter, DatasetFilter, Epoch, RunStart, Store, StoreErrorKind,
    StoreResult, StoredConnection,
};
use crate::workflow::{NodeSpec, WorkflowDefinition};

fn t0() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)
}

fn tenant_a() -> TenantId {
    TenantId::new("tenant-a")
}

fn tenant_b() -> TenantId {
    TenantId::new("tenant-b")
}

fn workflow(id: &str, version: u32, name: &str) -> WorkflowDefinition {
    let mut def = WorkflowDefinition::new(id, name).node(NodeSpec::new("start", "manual"));
    def.version = version;
    def
}

fn run(tenant: &TenantId, workflow: &str, status: RunStatus, minutes: i64) -> Run {
    Run {
        id: RunId::new(),
        tenant: tenant.clone(),
        workflow_id: WorkflowId::new(workflow),
        workflow_version: 1,
        status,
        trigger_node: None,
        trigger: vec![json!({"supplier": "ACME"})
            .as_object()
            .cloned()
            .unwrap_or_default()],
        created_at: t0() + Duration::minutes(minutes),
        ended_at: None,
        error: None,
        origin: None,
        parent: None,
    }
}

fn execution(run: RunId, node: &str, status: NodeStatus) -> NodeExecution {
    NodeExecution {
        run_id: run,
        node_id: NodeId::new(node),
        node_type: "noop".into(),
        status,
        attempt: 1,
        input: Ports::main(vec![json!({"i": 1})
            .as_object()
            .cloned()
            .unwrap_or_default()]),
        output: None,
        error: None,
        wait: None,
        resumed: None,
        started_at: Some(t0()),
        ended_at: None,
    }
}

fn waiting(run: RunId, node: &str, key: &str, until: Option<DateTime<Utc>>) -> NodeExecution {
    let mut exec = execution(run, node, NodeStatus::Waiting);
    exec.wait = Some(Box::new(Wait {
        key: key.into(),
        run_id: run,
        node_id: NodeId::new(node),
        until,
        state: json!({"sent": 3}),
    }));
    exec
}

/// The epoch of a run's first lease: what the suite's writes carry.
const E: Epoch = Epoch::FIRST;

/// Stores `run` and takes its first lease for `engine-1`, as an engine
/// that drives it does before it writes into it.
async fn insert_leased(store: &dyn Store, run: &Run) -> StoreResult<()> {
    store.insert_run(run).await?;
    let now = t0();
    let epoch = store
        .claim_run(
            &run.tenant,
            run.id,
            "engine-1",
            now + Duration::days(36_500),
            now,
        )
        .await?;
    assert_eq!(
        epoch,
        Some(E),
        "a run's first lease must have the first epoch"
    );
    Ok(())
}

macro_rules! ok {
    ($call:expr) => {
        match $call {
            Ok(value) => value,
            Err(err) => panic!("{} failed: {err}", stringify!($call)),
        }
    };
}

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

fn start_entry(run: &Run) -> AuditEntry {
    AuditEntry {
        tenant: run.tenant.clone(),
        at: run.created_at,
        actor: Some("api-key:ops".into()),
        action: AuditAction::Execute,
        entity_type: "run".into(),
        entity_id: run.id.to_string(),
        details: json!({"workflow": run.workflow_id}),
    }
}

/// Starts `r` leased to `owner` until `until`; returns its audit entry.
async fn start_leased(store: &dyn Store, r: &Run, owner: &str, until: DateTime<Utc>) -> AuditEntry {
    let entry = start_entry(r);
    ok!(store
        .start_run(&RunStart {
            run: r,
            owner,
            lease_until: until,
            audit: &entry,
        })
        .await);
    entry
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

/// Everything of `tenant` a store hands back, for comparing before and
/// after: workflows, runs, each run's node records, audit entries.
async fn tenant_snapshot(store: &dyn Store, tenant: &TenantId) -> String {
    let mut workflows = ok!(store.workflows(tenant).await);
    workflows.sort_by(|x, y| x.id.as_str().cmp(y.id.as_str()));
    let runs = ok!(store.runs(tenant, &RunFilter::all()).await);
    let mut nodes = Vec::new();
    for r in &runs {
        nodes.push(ok!(store.node_executions(tenant, r.id).await));
    }
    let audit = ok!(store.audit_log(tenant, &AuditFilter::default()).await);
    format!("{workflows:?}\n{runs:?}\n{nodes:?}\n{audit:?}")
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

/// Takes or keeps `owner`'s lease on run `id`, answering its epoch.
async fn claim_epoch(
    store: &dyn Store,
    tenant: &TenantId,
    id: RunId,
    owner: &str,
    now: DateTime<Utc>,
) -> Option<Epoch> {
    ok!(store
        .claim_run(tenant, id, owner, now + Duration::seconds(30), now)
        .await)
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

/// A wake-up held on `key` for a day from `t0()`.
fn held(key: &str, payload: serde_json::Value) -> crate::store::HeldWakeup {
    crate::store::HeldWakeup::new(key, payload, t0(), std::time::Duration::from_secs(86_400))
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

/// A form answer stored with its node's wake-up delivers it in the same
/// change (holding it, or ending the wait), and so does a review; a
/// refused answer delivers nothing.
pub async fn form_answers_and_reviews_carry_their_wakeups(store: &dyn Store) {
    let a = tenant_a();
    let mut r = run(&a, "w", RunStatus::Running, 0);
    ok!(insert_leased(store, &r).await);
    let mut answer = response(&a, "profile", "jane@acme.test", 1);
    answer.run_id = Some(r.id);
    answer.node_id = Some(NodeId::new("ask"));
    assert_eq!(
        ok!(store
            .insert_response(&answer, None, Some(&held("form:ask", json!({"answer": 1}))))
            .await),
        None,
        "no node waits yet: held"
    );
    let dup = store
        .insert_response(&answer, None, Some(&held("form:other", json!({}))))
        .await
        .expect_err("the same answer twice is refused");
    assert_eq!(dup.kind(), StoreErrorKind::Conflict, "{dup}");
    assert_eq!(
        ok!(store.held_wakeups(&a).await)
            .iter()
            .map(|w| w.key.as_str())
            .collect::<Vec<_>>(),
        ["form:ask"],
        "a refused answer holds nothing"
    );
    assert!(ok!(store
        .suspend_node(&a, &waiting(r.id, "ask", "form:ask", None), E)
        .await)
    .is_some());

    ok!(store
        .suspend_node(&a, &waiting(r.id, "review", "review:ask", None), E)
        .await);
    r.status = RunStatus::Waiting;
    ok!(store.update_run(&r, E).await);
    let review = Review {
        status: ReviewStatus::Approved,
        reviewer: "rita".into(),
        comment: None,
        at: t0() + Duration::hours(1),
    };
    let wake = |reviewed: &FormResponse| {
        Some(held(
            "review:ask",
            json!({ "status": reviewed.review_status }),
        ))
    };
    let (reviewed, woke) = ok!(store.review_response(&a, answer.id, &review, &wake).await);
    assert_eq!(reviewed.review_status, ReviewStatus::Approved);
    let woke = woke.expect("the review ends the stored wait");
    assert_eq!(woke.node_id.as_str(), "review");
    let record = ok!(store.node_executions(&a, r.id).await)
        .into_iter()
        .find(|e| e.node_id.as_str() == "review")
        .expect("the review node's record");
    assert_eq!(
        record
            .resumed
            .map(|resumed| resumed.wakeup_payload().clone()),
        Some(json!({"status": "approved"}))
    );
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

/// Content is kept in chunks per tenant, written once, read back as
/// written, deleted whole. Another tenant can neither read nor delete it
/// by its id, and a write of its own under the same id is its own content:
/// it neither collides with the first tenant's chunks (a refusal would tell
/// it they exist) nor changes them.
pub async fn content_is_chunked_per_tenant_and_written_once(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let id = crate::content::ContentId::new();
    for (seq, bytes) in [(0, &b"first "[..]), (1, b"second "), (2, b"")] {
        ok!(store.put_chunk(&a, id, seq, bytes).await);
    }
    assert_eq!(
        ok!(store.chunk(&a, id, 1).await).as_deref(),
        Some(&b"second "[..])
    );
    assert_eq!(ok!(store.chunk(&a, id, 2).await).as_deref(), Some(&b""[..]));
    assert!(ok!(store.chunk(&a, id, 3).await).is_none());
    assert!(
        ok!(store.chunk(&b, id, 0).await).is_none(),
        "another tenant's content"
    );
    let err = store
        .put_chunk(&a, id, 1, b"changed")
        .await
        .expect_err("a chunk is written once");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(ok!(store.delete_content(&b, id).await), 0);
    assert_eq!(
        ok!(store.chunk(&a, id, 0).await).as_deref(),
        Some(&b"first "[..]),
        "another tenant's delete by id removes nothing"
    );
    ok!(store.put_chunk(&b, id, 0, b"b's own").await);
    assert_eq!(
        ok!(store.chunk(&b, id, 0).await).as_deref(),
        Some(&b"b's own"[..])
    );
    assert_eq!(
        ok!(store.chunk(&a, id, 0).await).as_deref(),
        Some(&b"first "[..]),
        "the first tenant's chunk is unchanged"
    );
    assert_eq!(ok!(store.delete_content(&a, id).await), 3);
    assert!(ok!(store.chunk(&a, id, 0).await).is_none());
    assert_eq!(
        ok!(store.chunk(&b, id, 0).await).as_deref(),
        Some(&b"b's own"[..]),
        "deleting one tenant's content leaves the other's"
    );
}

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

/// Two runs of `tenant` stored for the concurrency cases: one running, one
/// that failed at `t0()`.
async fn stored_and_ended(store: &dyn Store, tenant: &TenantId) -> (Run, Run) {
    let existing = run(tenant, "w", RunStatus::Running, 0);
    let ended = run(tenant, "w", RunStatus::Running, 1);
    for r in [&existing, &ended] {
        ok!(insert_leased(store, r).await);
    }
    ok!(store
        .end_run(tenant, ended.id, RunStatus::Failed, "gave up", t0(), None)
        .await);
    (existing, ended)
}

/// `runs` as they are once they succeeded at `at`.
fn succeeded(runs: &[Run], at: DateTime<Utc>) -> Vec<Run> {
    runs.iter()
        .map(|r| Run {
            status: RunStatus::Succeeded,
            ended_at: Some(at),
            ..r.clone()
        })
        .collect()
}

/// The starts of `runs`, each with its audit entry, leased to `owner`.
fn leased_starts<'a>(
    runs: &[&'a Run],
    entries: &'a [AuditEntry],
    owner: &'a str,
    until: DateTime<Utc>,
) -> Vec<RunStart<'a>> {
    runs.iter()
        .zip(entries)
        .map(|(r, entry)| RunStart {
            run: r,
            owner,
            lease_until: until,
            audit: entry,
        })
        .collect()
}

/// Starts `runs` all at once, leased to "engine-1" until `until`.
async fn start_together(
    store: &dyn Store,
    runs: &[&Run],
    until: DateTime<Utc>,
) -> Vec<StoreResult<()>> {
    let entries: Vec<AuditEntry> = runs.iter().map(|r| start_entry(r)).collect();
    let starts = leased_starts(runs, &entries, "engine-1", until);
    futures_util::future::join_all(starts.iter().map(|start| store.start_run(start))).await
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

fn form(id: &str, version: u32) -> FormSchema {
    let mut form = FormSchema::new(
        id,
        format!("Form {id} v{version}"),
        json!({"type": "object", "properties": {"email": {"type": "string", "x-pii": true}}}),
    )
    .with_ui_schema(json!({"email": {"ui:widget": "email"}}))
    .with_retention_days(30);
    form.version = version;
    form
}

fn link(tenant: &TenantId, hash: &str, expires_in_days: i64) -> FormLink {
    FormLink {
        token_hash: hash.into(),
        tenant: tenant.clone(),
        form_id: FormId::new("profile"),
        form_version: 1,
        run_id: None,
        node_id: Some(NodeId::new("send")),
        wait_key: Some("responses:send".into()),
        respondent: Some("jane@acme.test".into()),
        created_at: t0(),
        expires_at: t0() + Duration::days(expires_in_days),
        used_at: None,
    }
}

fn response(tenant: &TenantId, form_id: &str, respondent: &str, minutes: i64) -> FormResponse {
    FormResponse {
        id: ResponseId::new(),
        tenant: tenant.clone(),
        form_id: FormId::new(form_id),
        form_version: 1,
        run_id: None,
        node_id: None,
        respondent: Some(respondent.into()),
        data: json!({"email": respondent, "size": minutes}),
        consent: Some(crate::form::Consent {
            given: true,
            text: "privacy-notice v3".into(),
            at: t0(),
        }),
        submitter: Submitter {
            ip: Some("192.0.2.7".into()),
            user_agent: Some("Firefox".into()),
        },
        submitted_at: t0() + Duration::minutes(minutes),
        review_status: ReviewStatus::Pending,
        review: None,
        erased_at: None,
    }
}

/// Form versions are immutable; the latest is the highest; tenants are apart.
pub async fn form_versions_are_immutable(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_form(&a, &form("profile", 1)).await);
    ok!(store.insert_form(&a, &form("profile", 2)).await);
    let err = store
        .insert_form(&a, &form("profile", 2))
        .await
        .expect_err("a stored version cannot be stored again");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let id = FormId::new("profile");
    assert_eq!(
        ok!(store.form(&a, &id, None).await),
        Some(form("profile", 2))
    );
    assert_eq!(
        ok!(store.form(&a, &id, Some(1)).await),
        Some(form("profile", 1))
    );
    assert_eq!(
        ok!(store.form(&b, &id, None).await),
        None,
        "tenant b sees no form of a"
    );
}

/// A link is used by exactly one response, never after it expired, and
/// never by another tenant's response; a refused submission stores nothing.
pub async fn a_form_link_is_used_once(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_link(&link(&a, "hash-1", 7)).await);
    ok!(store.insert_link(&link(&a, "hash-old", 0)).await);
    assert_eq!(
        store
            .insert_link(&link(&a, "hash-1", 7))
            .await
            .map_err(|e| e.kind()),
        Err(StoreErrorKind::Conflict)
    );
    let stored = ok!(store.link("hash-1").await).expect("the link is found by its hash");
    assert_eq!(stored.tenant, a);
    assert_eq!(stored.wait_key.as_deref(), Some("responses:send"));

    let foreign = response(&b, "profile", "mallory@evil.test", 1);
    let err = store
        .insert_response(&foreign, Some("hash-1"), None)
        .await
        .expect_err("another tenant's response cannot use the link");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");

    let first = response(&a, "profile", "jane@acme.test", 1);
    ok!(store.insert_response(&first, Some("hash-1"), None).await);
    let used = ok!(store.link("hash-1").await).expect("still there");
    assert_eq!(used.used_at, Some(first.submitted_at));

    let second = response(&a, "profile", "jane@acme.test", 2);
    let err = store
        .insert_response(&second, Some("hash-1"), None)
        .await
        .expect_err("a used link is refused");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    let late = response(&a, "profile", "jane@acme.test", 3);
    let err = store
        .insert_response(&late, Some("hash-old"), None)
        .await
        .expect_err("an expired link is refused");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        ok!(store.link("hash-old").await).and_then(|l| l.used_at),
        None
    );

    let stored = ok!(store.responses(&a, &ResponseFilter::all()).await);
    assert_eq!(stored, vec![first], "refused submissions store nothing");
    assert!(ok!(store.responses(&b, &ResponseFilter::all()).await).is_empty());
}

/// A link keeps one draft, replaced by each save, while it is unused and
/// not expired; its submission removes the draft; retention purges old
/// drafts with old responses.
pub async fn a_link_keeps_one_draft_until_it_is_used(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.insert_link(&link(&a, "hash-d", 7)).await);
    ok!(store.insert_link(&link(&a, "hash-gone", 0)).await);
    ok!(store.insert_link(&link(&a, "hash-kept", 7)).await);
    let draft =
        |tenant: &TenantId, hash: &str, minutes: i64, company: &str| crate::form::FormDraft {
            token_hash: hash.into(),
            tenant: tenant.clone(),
            data: json!({ "company": company }),
            saved_at: t0() + Duration::minutes(minutes),
        };
    assert!(ok!(store.draft("hash-d").await).is_none());
    ok!(store.save_draft(&draft(&a, "hash-d", 1, "AC")).await);
    let later = draft(&a, "hash-d", 2, "ACME");
    ok!(store.save_draft(&later).await);
    assert_eq!(
        ok!(store.draft("hash-d").await),
        Some(later),
        "the last save wins"
    );

    let err = store
        .save_draft(&draft(&b, "hash-d", 3, "evil"))
        .await
        .expect_err("another tenant's draft cannot use the link");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let err = store
        .save_draft(&draft(&a, "no-such-hash", 3, "x"))
        .await
        .expect_err("an unknown link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let err = store
        .save_draft(&draft(&a, "hash-gone", 3, "x"))
        .await
        .expect_err("an expired link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert!(ok!(store.draft("hash-gone").await).is_none());

    ok!(store
        .insert_response(
            &response(&a, "profile", "jane@acme.test", 4),
            Some("hash-d"),
            None
        )
        .await);
    assert!(
        ok!(store.draft("hash-d").await).is_none(),
        "the submission removes the draft"
    );
    let err = store
        .save_draft(&draft(&a, "hash-d", 5, "again"))
        .await
        .expect_err("a used link takes no draft");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");

    ok!(store.save_draft(&draft(&a, "hash-kept", 10, "later")).await);
    ok!(store
        .delete_responses(&a, &FormId::new("profile"), t0() + Duration::minutes(10))
        .await);
    assert!(
        ok!(store.draft("hash-kept").await).is_some(),
        "saved at the cut-off: kept"
    );
    ok!(store
        .delete_responses(&a, &FormId::new("profile"), t0() + Duration::minutes(11))
        .await);
    assert!(
        ok!(store.draft("hash-kept").await).is_none(),
        "purged with the responses"
    );
}

/// Responses filter by form, node, respondent and review state, newest
/// first; a response is decided once.
pub async fn responses_filter_and_are_reviewed_once(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let asking = run(&a, "w", RunStatus::Waiting, 0);
    ok!(store.insert_run(&asking).await);
    let run_id = asking.id;
    let mut asked = response(&a, "profile", "jane@acme.test", 1);
    asked.run_id = Some(run_id);
    asked.node_id = Some(NodeId::new("wait"));
    let other = response(&a, "profile", "joe@acme.test", 2);
    let survey = response(&a, "survey", "jane@acme.test", 3);
    for r in [&asked, &other, &survey] {
        ok!(store.insert_response(r, None, None).await);
    }
    let ids = |rs: Vec<FormResponse>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::form("profile"))
            .await)),
        vec![other.id, asked.id]
    );
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::node(run_id, "wait"))
            .await)),
        vec![asked.id]
    );
    assert_eq!(
        ids(ok!(store
            .responses(&a, &ResponseFilter::all().respondent("jane@acme.test"))
            .await)),
        vec![survey.id, asked.id]
    );
    assert_eq!(
        ok!(store.responses(&a, &ResponseFilter::all().limit(1)).await).len(),
        1
    );

    let review = Review {
        status: ReviewStatus::Approved,
        reviewer: "rita".into(),
        comment: Some("complete".into()),
        at: t0() + Duration::hours(1),
    };
    let err = store
        .review_response(&b, asked.id, &review, &|_| None)
        .await
        .expect_err("tenant b cannot review a's response");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let (reviewed, woke) = ok!(store
        .review_response(&a, asked.id, &review, &|_| None)
        .await);
    assert_eq!(woke, None, "no wake-up asked for, none delivered");
    assert_eq!(reviewed.review_status, ReviewStatus::Approved);
    assert_eq!(reviewed.review, Some(review.clone()));
    let err = store
        .review_response(&a, asked.id, &review, &|_| None)
        .await
        .expect_err("a decided response is not decided again");
    assert_eq!(err.kind(), StoreErrorKind::Conflict, "{err}");
    assert_eq!(
        ids(ok!(store
            .responses(
                &a,
                &ResponseFilter::form("profile").status(ReviewStatus::Pending)
            )
            .await)),
        vec![other.id]
    );
    let approved = ok!(store
        .responses(
            &a,
            &ResponseFilter::form("profile").status(ReviewStatus::Approved)
        )
        .await);
    assert_eq!(approved, vec![reviewed], "the review reads back as written");
}

/// Erasing removes a response's personal data and keeps the rest;
/// purging deletes one form's responses older than a time, of one tenant.
pub async fn responses_are_erased_and_purged(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let old = response(&a, "profile", "jane@acme.test", 1);
    let new = response(&a, "profile", "joe@acme.test", 100);
    let survey = response(&a, "survey", "jane@acme.test", 1);
    let theirs = response(&b, "profile", "bob@b.test", 1);
    for r in [&old, &new, &survey, &theirs] {
        ok!(store.insert_response(r, None, None).await);
    }
    let blanked = json!({"email": null, "size": 1});
    let at = t0() + Duration::days(1);
    ok!(store.erase_response(&a, old.id, &blanked, at).await);
    let err = store
        .erase_response(&b, old.id, &blanked, at)
        .await
        .expect_err("tenant b cannot erase a's response");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");
    let erased = ok!(store.responses(&a, &ResponseFilter::form("profile")).await)
        .into_iter()
        .find(|r| r.id == old.id)
        .expect("an erased response stays");
    assert_eq!(erased.data, blanked);
    assert_eq!(erased.respondent, None);
    assert_eq!(erased.submitter, Submitter::default());
    assert_eq!(erased.erased_at, Some(at));
    assert_eq!(erased.consent, old.consent, "the consent record is kept");

    let cut = t0() + Duration::minutes(50);
    assert_eq!(
        ok!(store
            .delete_responses(&a, &FormId::new("profile"), cut)
            .await),
        1
    );
    let left = ok!(store.responses(&a, &ResponseFilter::all()).await);
    let left: Vec<_> = left.into_iter().map(|r| r.id).collect();
    assert_eq!(left, vec![new.id, survey.id]);
    assert_eq!(
        ok!(store.responses(&b, &ResponseFilter::all()).await).len(),
        1
    );
}

/// A node's collection into a dataset replaces what it collected in that
/// run before; datasets filter by run and time, newest first, per tenant.
pub async fn datasets_replace_per_node_and_filter(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    let (first, second) = (RunId::new(), RunId::new());
    let node = NodeId::new("collect");
    let item = |n: i64| json!({ "n": n }).as_object().cloned().unwrap_or_default();
    ok!(store
        .put_dataset(&a, "suppliers", first, &node, &[item(1), item(2)], t0())
        .await);
    // The node ran again (a retry after a crash): its collection is replaced.
    ok!(store
        .put_dataset(
            &a,
            "suppliers",
            first,
            &node,
            &[item(1), item(2), item(3)],
            t0()
        )
        .await);
    let later = t0() + Duration::hours(1);
    ok!(store
        .put_dataset(&a, "suppliers", second, &node, &[item(10)], later)
        .await);
    ok!(store
        .put_dataset(&a, "other", second, &node, &[item(99)], later)
        .await);

    let all = ok!(store.dataset(&a, "suppliers", &DatasetFilter::all()).await);
    let ns: Vec<_> = all.iter().map(|r| r.item["n"].clone()).collect();
    assert_eq!(ns, vec![json!(10), json!(1), json!(2), json!(3)]);
    assert_eq!(all[1].run_id, first);
    assert_eq!(all[1].position, 0);
    assert_eq!(all[0].collected_at, later);

    let of_first = ok!(store
        .dataset(&a, "suppliers", &DatasetFilter::all().run(first))
        .await);
    assert_eq!(of_first.len(), 3);
    let recent = ok!(store
        .dataset(&a, "suppliers", &DatasetFilter::all().since(later))
        .await);
    assert_eq!(recent.len(), 1);
    assert_eq!(
        ok!(store
            .dataset(&a, "suppliers", &DatasetFilter::all().limit(2))
            .await)
        .len(),
        2
    );
    assert!(ok!(store.dataset(&b, "suppliers", &DatasetFilter::all()).await).is_empty());
    assert!(ok!(store.dataset(&a, "missing", &DatasetFilter::all()).await).is_empty());
}

fn connection(tenant: &TenantId, id: &str, key_id: &str) -> StoredConnection {
    StoredConnection {
        tenant: tenant.clone(),
        id: id.into(),
        name: format!("SAP {id}"),
        kind: "sap".into(),
        key_id: key_id.into(),
        sealed_config: vec![0, 1, 2, 254, 255],
        config_hash: "ab".repeat(32),
        active: true,
        last_tested_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

/// Connections are stored per tenant and replaced by id, their sealed bytes
/// kept exactly; tests are recorded; rotation finds them by key.
pub async fn connections_round_trip_per_tenant(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store
        .save_connection(&connection(&a, "sap-prod", "k1"))
        .await);
    ok!(store
        .save_connection(&connection(&a, "netsuite", "k1"))
        .await);
    ok!(store
        .save_connection(&connection(&b, "sap-prod", "k2"))
        .await);
    let mut changed = connection(&a, "sap-prod", "k2");
    changed.active = false;
    changed.sealed_config = vec![9; 40];
    changed.updated_at = t0() + Duration::hours(1);
    ok!(store.save_connection(&changed).await);

    assert_eq!(
        ok!(store.connection(&a, "sap-prod").await),
        Some(changed.clone())
    );
    let ids: Vec<_> = ok!(store.connections(&a).await)
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec!["netsuite", "sap-prod"]);
    assert_eq!(
        ok!(store.connection(&b, "sap-prod").await).map(|c| c.key_id),
        Some("k2".into())
    );
    assert_eq!(ok!(store.connection(&b, "netsuite").await), None);

    let at = t0() + Duration::days(1);
    ok!(store.mark_tested(&a, "netsuite", at).await);
    assert_eq!(
        ok!(store.connection(&a, "netsuite").await).and_then(|c| c.last_tested_at),
        Some(at)
    );
    let err = store
        .mark_tested(&b, "netsuite", at)
        .await
        .expect_err("b has no netsuite");
    assert_eq!(err.kind(), StoreErrorKind::NotFound, "{err}");

    let mut with_k1: Vec<_> = ok!(store.connections_sealed_with("k1", 10).await)
        .into_iter()
        .map(|c| (c.tenant, c.id))
        .collect();
    with_k1.sort();
    assert_eq!(with_k1, vec![(a.clone(), "netsuite".to_string())]);
    assert_eq!(ok!(store.connections_sealed_with("k2", 1).await).len(), 1);
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

/// A connection is replaced only while it is stored exactly as its writer
/// read it: a change made meanwhile (a deactivation, a test, a rotation)
/// is never reverted, and another tenant's connection of the same id is
/// not touched.
pub async fn connections_are_replaced_only_as_read(store: &dyn Store) {
    let (a, b) = (tenant_a(), tenant_b());
    ok!(store.save_connection(&connection(&a, "erp", "k1")).await);
    ok!(store.save_connection(&connection(&b, "erp", "k1")).await);
    let read = ok!(store.connection(&a, "erp").await).expect("stored");

    let mut resealed = read.clone();
    resealed.key_id = "k2".into();
    resealed.sealed_config = vec![7; 40];
    resealed.config_hash = "f".repeat(64);
    assert!(ok!(store.replace_connection(&resealed, &read).await));
    assert_eq!(
        ok!(store.connection(&a, "erp").await),
        Some(resealed.clone())
    );
    assert!(
        !ok!(store.replace_connection(&resealed, &read).await),
        "the row read is not what is stored any more"
    );

    // Deactivated after a rotation read it: the rotation's write is refused.
    let rotation_read = resealed.clone();
    let mut off = resealed.clone();
    off.active = false;
    off.updated_at = t0() + Duration::hours(2);
    assert!(ok!(store.replace_connection(&off, &resealed).await));
    let mut late = rotation_read.clone();
    late.key_id = "k3".into();
    assert!(!ok!(store.replace_connection(&late, &rotation_read).await));
    assert_eq!(
        ok!(store.connection(&a, "erp").await).map(|c| (c.active, c.key_id)),
        Some((false, "k2".to_string())),
        "the deactivation stays"
    );
    let tested = ok!(store.connection(&a, "erp").await).expect("stored");
    ok!(store
        .mark_tested(&a, "erp", t0() + Duration::hours(3))
        .await);
    let mut stale = tested.clone();
    stale.name = "renamed".into();
    assert!(
        !ok!(store.replace_connection(&stale, &tested).await),
        "a test recorded since the read counts as a change"
    );

    assert_eq!(
        ok!(store.connection(&b, "erp").await).map(|c| c.key_id),
        Some("k1".to_string()),
        "the other tenant's connection is its own"
    );
    let mut unknown = read.clone();
    unknown.id = "nope".into();
    assert!(!ok!(store.replace_connection(&unknown, &unknown).await));
}
