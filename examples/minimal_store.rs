//! Run with: cargo run --example minimal_store
//! Test with: cargo test -p concertmaster-examples --example minimal_store
//!
//! A storage backend for the engine alone: it implements the engine's
//! five traits (workflows, runs, waits, leases, the audit log; 29 methods)
//! and `Store`, and nothing else: no forms, datasets, connections or
//! content. It keeps its records by handing them to an in-memory store and
//! counts what the engine asks of it, call by call: the shape of a host's
//! own backend that meters, mirrors or routes what the engine writes. Its
//! tests run the engine's part of the conformance suite
//! (`store_conformance!`), as any backend for the engine must pass it.
//!
//! The program runs a two-step workflow on it and prints the calls.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::node::{NodeCategory, Resumed, Wakeup};
use concertmaster_core::run::{NodeExecution, RunFilter, Wait};
use concertmaster_core::store::{
    AuditEntry, AuditFilter, AuditStore, DeliveryAudit, Epoch, HeldWakeup, LeaseRequest,
    LeaseStore, RunClaim, RunMigration, RunStart, RunStore, StoreResult, WaitStore, Woken,
    WorkflowStore,
};
use concertmaster_core::workflow::{Edge, NodeSpec};
use concertmaster_core::{
    Engine, InMemoryStore, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry,
    Ports, Run, RunId, RunStatus, Store, TenantId, WorkflowDefinition, WorkflowId,
};

/// The engine's records, kept by an in-memory store, with a count of
/// every call the engine made.
#[derive(Debug, Clone, Default)]
struct CountingStore {
    inner: InMemoryStore,
    calls: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl CountingStore {
    fn count(&self, call: &'static str) {
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *calls.entry(call).or_default() += 1;
    }

    fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The engine's trait: nothing to add. A backend that keeps large values
/// too answers its `ContentStore` from `content_store`.
impl Store for CountingStore {}

#[async_trait]
impl WorkflowStore for CountingStore {
    async fn insert_workflow(
        &self,
        tenant: &TenantId,
        def: &WorkflowDefinition,
    ) -> StoreResult<()> {
        self.count("insert_workflow");
        self.inner.insert_workflow(tenant, def).await
    }
    async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> StoreResult<Option<WorkflowDefinition>> {
        self.count("workflow");
        self.inner.workflow(tenant, id, version).await
    }
    async fn workflow_versions(&self, tenant: &TenantId, id: &WorkflowId) -> StoreResult<Vec<u32>> {
        self.count("workflow_versions");
        self.inner.workflow_versions(tenant, id).await
    }
    async fn workflows(&self, tenant: &TenantId) -> StoreResult<Vec<WorkflowDefinition>> {
        self.count("workflows");
        self.inner.workflows(tenant).await
    }
}
#[async_trait]
impl RunStore for CountingStore {
    async fn insert_run(&self, run: &Run) -> StoreResult<()> {
        self.count("insert_run");
        self.inner.insert_run(run).await
    }
    async fn start_run(&self, start: &RunStart<'_>) -> StoreResult<()> {
        self.count("start_run");
        self.inner.start_run(start).await
    }
    async fn run(&self, tenant: &TenantId, id: RunId) -> StoreResult<Option<Run>> {
        self.count("run");
        self.inner.run(tenant, id).await
    }
    async fn update_run(&self, run: &Run, epoch: Epoch) -> StoreResult<()> {
        self.count("update_run");
        self.inner.update_run(run, epoch).await
    }
    async fn settle_run(
        &self,
        run: &Run,
        owner: &str,
        epoch: Epoch,
        steps: &[NodeExecution],
    ) -> StoreResult<()> {
        self.count("settle_run");
        self.inner.settle_run(run, owner, epoch, steps).await
    }
    async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        self.count("runs");
        self.inner.runs(tenant, filter).await
    }
    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()> {
        self.count("save_node_execution");
        self.inner
            .save_node_execution(tenant, execution, epoch)
            .await
    }
    async fn node_executions(
        &self,
        tenant: &TenantId,
        id: RunId,
    ) -> StoreResult<Vec<NodeExecution>> {
        self.count("node_executions");
        self.inner.node_executions(tenant, id).await
    }
    async fn end_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        status: RunStatus,
        reason: &str,
        at: DateTime<Utc>,
        epoch: Option<Epoch>,
    ) -> StoreResult<Option<Run>> {
        self.count("end_run");
        self.inner
            .end_run(tenant, id, status, reason, at, epoch)
            .await
    }
    async fn migrate_run(&self, migration: &RunMigration<'_>) -> StoreResult<()> {
        self.count("migrate_run");
        self.inner.migrate_run(migration).await
    }
    async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.count("runs_in_flight");
        self.inner.runs_in_flight().await
    }
}
#[async_trait]
impl WaitStore for CountingStore {
    async fn suspend_node(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<Option<Resumed>> {
        self.count("suspend_node");
        self.inner.suspend_node(tenant, execution, epoch).await
    }
    async fn deliver(
        &self,
        tenant: &TenantId,
        wakeup: &HeldWakeup,
        lease: Option<LeaseRequest<'_>>,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Woken>> {
        self.count("deliver");
        self.inner.deliver(tenant, wakeup, lease, audit).await
    }
    async fn held_wakeups(&self, tenant: &TenantId) -> StoreResult<Vec<HeldWakeup>> {
        self.count("held_wakeups");
        self.inner.held_wakeups(tenant).await
    }
    async fn expire_wakeups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, HeldWakeup)>> {
        self.count("expire_wakeups");
        self.inner.expire_wakeups(now, limit).await
    }
    async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> StoreResult<bool> {
        self.count("discard_wakeup");
        self.inner.discard_wakeup(tenant, key).await
    }
    async fn take_wait(
        &self,
        tenant: &TenantId,
        key: &str,
        wakeup: Wakeup,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Wait>> {
        self.count("take_wait");
        self.inner.take_wait(tenant, key, wakeup, audit).await
    }
    async fn due_waits(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, Wait)>> {
        self.count("due_waits");
        self.inner.due_waits(now, limit).await
    }
    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.count("next_due");
        self.inner.next_due().await
    }
}
#[async_trait]
impl LeaseStore for CountingStore {
    async fn claim_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Epoch>> {
        self.count("claim_run");
        self.inner.claim_run(tenant, id, owner, until, now).await
    }
    async fn claim_runs(&self, claim: &RunClaim<'_>) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.count("claim_runs");
        self.inner.claim_runs(claim).await
    }
    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[RunId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunId>> {
        self.count("renew_leases");
        self.inner.renew_leases(owner, runs, until).await
    }
    async fn release_run(&self, id: RunId, owner: &str) -> StoreResult<()> {
        self.count("release_run");
        self.inner.release_run(id, owner).await
    }
}
#[async_trait]
impl AuditStore for CountingStore {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.count("append_audit");
        self.inner.append_audit(entry).await
    }
    async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.count("audit_log");
        self.inner.audit_log(tenant, filter).await
    }
}
/// Adds one to `x` of each item.
struct AddOne;

#[async_trait]
impl Node for AddOne {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.main_items().to_vec();
        for item in &mut items {
            let x = item
                .get("x")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            item.insert("x".into(), (x + 1).into());
        }
        Ok(NodeOutcome::main(items))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = CountingStore::default();
    let mut registry = NodeRegistry::new();
    registry.register_node(
        NodeDescriptor::new("add_one", NodeCategory::Transform),
        AddOne,
    )?;
    let engine = Engine::builder()
        .store(store.clone())
        .registry(registry)
        .build()
        .await?;

    let tenant = TenantId::new("acme");
    let def = WorkflowDefinition::new("count", "Count")
        .node(NodeSpec::new("first", "add_one"))
        .node(NodeSpec::new("second", "add_one"))
        .edge(Edge::new("first", "second"));
    let workflow = engine.publish(&tenant, def).await?;
    let run = engine
        .start(&workflow, serde_json::json!({ "x": 1 }))
        .await?;
    let run = engine.finished(&tenant, run).await?;
    assert_eq!(run.status, RunStatus::Succeeded);
    let detail = engine.run(&tenant, run.id).await?;
    println!(
        "x = {}",
        detail
            .output("second")
            .map_or(serde_json::Value::Null, |o| o.main_items()[0]["x"].clone())
    );
    // Content needs a store that keeps it; this one does not.
    let refused = engine.contents(&tenant).put_bytes(b"hello", None).await;
    println!(
        "content: {}",
        refused.err().map_or("kept".into(), |e| e.to_string())
    );
    for (call, n) in store.calls() {
        println!("{call:>24}: {n}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    concertmaster_core::store_conformance!(async { super::CountingStore::default() });

    /// A store without content refuses a content threshold when the engine
    /// is built, and answers every content call with a typed error.
    #[tokio::test]
    async fn without_content_the_engine_says_so() {
        let refused = Engine::builder()
            .store(CountingStore::default())
            .content_threshold(1024)
            .build()
            .await;
        assert!(
            matches!(refused, Err(concertmaster_core::Error::NoContentStore)),
            "{refused:?}"
        );
        let engine = Engine::builder()
            .store(CountingStore::default())
            .build()
            .await
            .expect("builds without a threshold");
        let put = engine
            .contents(&TenantId::new("acme"))
            .put_bytes(b"hello", None)
            .await;
        assert!(
            matches!(put, Err(concertmaster_core::content::ContentError::NotKept)),
            "{put:?}"
        );
    }
}
