//! The store conformance suite: what every `Store` must do, one function per case.
//!
//! Run it with [`store_conformance!`](crate::store_conformance) (the
//! engine's traits) and the macros of the other traits a store implements,
//! or [`backend_conformance!`](crate::backend_conformance) for all. Each
//! case takes a fresh store and panics with a message naming the broken
//! rule. The cases are grouped by what they hold a store to.

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
    AuditAction, AuditEntry, AuditFilter, ConnectionStore, ContentStore, DatasetFilter,
    DatasetStore, Epoch, FormStore, RunStart, Store, StoreErrorKind, StoreResult, StoredConnection,
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

/// A wake-up held on `key` for a day from `t0()`.
fn held(key: &str, payload: serde_json::Value) -> crate::store::HeldWakeup {
    crate::store::HeldWakeup::new(key, payload, t0(), std::time::Duration::from_secs(86_400))
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

mod concurrency;
mod connections;
mod content;
mod datasets;
mod forms;
mod leases;
mod tenants;
mod waits;
mod workflows_runs;

pub use concurrency::*;
pub use connections::*;
pub use content::*;
pub use datasets::*;
pub use forms::*;
pub use leases::*;
pub use tenants::*;
pub use waits::*;
pub use workflows_runs::*;
