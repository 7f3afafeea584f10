//! A store that fails now and then: runs ride out outages without losing
//! or failing anything.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    AuditEntry, AuditFilter, AuditStore, ConnectionStore, DatasetFilter, DatasetRecord,
    DatasetStore, Engine, EngineBuilder, FormId, FormLink, FormResponse, FormSchema, FormStore,
    InMemoryStore, LeaseStore, NodeExecution, NodeStatus, ResponseFilter, ResponseId, Review, Run,
    RunFilter, RunId, RunStart, RunStatus, RunStore, StoreError, StoreResult, StoredConnection,
    TenantId, Wait, WaitStore, Wakeup, WorkflowDefinition, WorkflowId, WorkflowStore,
};
use serde_json::json;

use crate::support::{registry, workflow, Log};

/// Wraps an in-memory store; while `down` is set, or on every `every`-th
/// write, writes fail as an unreachable database's would. With `chaos`,
/// any call, read or write, may fail at once or after a delay (a
/// statement timeout) before it reaches the store, and a write the store
/// carried out may have its answer lost (the connection drops after the
/// commit): the caller sees a failure for a change that was made.
#[derive(Clone)]
struct FlakyStore {
    inner: InMemoryStore,
    down: Arc<AtomicBool>,
    every: usize,
    writes: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    chaos: Option<Arc<Chaos>>,
}

/// Random faults: each call fails with probability `fail`, or times out
/// (fails after `delay`) with probability `slow`; a write that went
/// through is reported failed with probability `lost`.
struct Chaos {
    rng: std::sync::Mutex<fastrand::Rng>,
    fail: f64,
    slow: f64,
    lost: f64,
    delay: Duration,
    injected: AtomicUsize,
    lost_answers: AtomicUsize,
}

impl FlakyStore {
    fn new(every: usize) -> Self {
        Self {
            inner: InMemoryStore::new(),
            down: Arc::new(AtomicBool::new(false)),
            every,
            writes: Arc::new(AtomicUsize::new(0)),
            refused: Arc::new(AtomicUsize::new(0)),
            chaos: None,
        }
    }

    fn chaotic(seed: u64, fail: f64, slow: f64, lost: f64) -> Self {
        Self {
            chaos: Some(Arc::new(Chaos {
                rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
                fail,
                slow,
                lost,
                delay: Duration::from_millis(20),
                injected: AtomicUsize::new(0),
                lost_answers: AtomicUsize::new(0),
            })),
            ..Self::new(0)
        }
    }

    /// `result` of a write the store carried out, or, now and then, the
    /// failure its caller sees when the answer is lost on the way back.
    fn answer<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        let Some(chaos) = &self.chaos else {
            return result;
        };
        if result.is_ok() && chaos.rng.lock().expect("rng lock").f64() < chaos.lost {
            chaos.lost_answers.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection reset before the answer arrived".into(),
            });
        }
        result
    }

    async fn fault(&self) -> StoreResult<()> {
        let Some(chaos) = &self.chaos else {
            return Ok(());
        };
        let roll = chaos.rng.lock().expect("rng lock").f64();
        if roll < chaos.fail {
            chaos.injected.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection reset by peer".into(),
            });
        }
        if roll < chaos.fail + chaos.slow {
            chaos.injected.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(chaos.delay).await;
            return Err(StoreError::Unavailable {
                message: "statement timed out".into(),
            });
        }
        Ok(())
    }

    fn write(&self) -> StoreResult<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.down.load(Ordering::SeqCst) || (self.every > 0 && n % self.every == 0) {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl WorkflowStore for FlakyStore {
    async fn insert_workflow(
        &self,
        tenant: &TenantId,
        def: &WorkflowDefinition,
    ) -> StoreResult<()> {
        self.fault().await?;
        self.inner.insert_workflow(tenant, def).await
    }
    async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> StoreResult<Option<WorkflowDefinition>> {
        self.fault().await?;
        self.inner.workflow(tenant, id, version).await
    }
    async fn workflow_versions(&self, tenant: &TenantId, id: &WorkflowId) -> StoreResult<Vec<u32>> {
        self.fault().await?;
        self.inner.workflow_versions(tenant, id).await
    }
    async fn workflows(&self, tenant: &TenantId) -> StoreResult<Vec<WorkflowDefinition>> {
        self.fault().await?;
        self.inner.workflows(tenant).await
    }
}

#[async_trait]
impl RunStore for FlakyStore {
    async fn insert_run(&self, run: &Run) -> StoreResult<()> {
        self.fault().await?;
        self.answer(self.inner.insert_run(run).await)
    }
    async fn start_run(&self, start: &RunStart<'_>) -> StoreResult<()> {
        self.fault().await?;
        self.answer(self.inner.start_run(start).await)
    }
    async fn run(&self, tenant: &TenantId, id: RunId) -> StoreResult<Option<Run>> {
        self.fault().await?;
        self.inner.run(tenant, id).await
    }
    async fn update_run(&self, run: &Run) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.update_run(run).await)
    }
    async fn settle_run(&self, run: &Run, owner: &str) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.settle_run(run, owner).await)
    }
    async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        self.fault().await?;
        self.inner.runs(tenant, filter).await
    }
    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
    ) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.save_node_execution(tenant, execution).await)
    }
    async fn node_executions(
        &self,
        tenant: &TenantId,
        id: RunId,
    ) -> StoreResult<Vec<NodeExecution>> {
        self.fault().await?;
        self.inner.node_executions(tenant, id).await
    }
    async fn end_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        status: RunStatus,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Run>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.end_run(tenant, id, status, reason, at).await)
    }
    async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.fault().await?;
        self.inner.runs_in_flight().await
    }
}

#[async_trait]
impl WaitStore for FlakyStore {
    async fn suspend_node(&self, tenant: &TenantId, execution: &NodeExecution) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.suspend_node(tenant, execution).await)
    }
    async fn take_wait(
        &self,
        tenant: &TenantId,
        key: &str,
        wakeup: Wakeup,
    ) -> StoreResult<Option<Wait>> {
        self.fault().await?;
        self.answer(self.inner.take_wait(tenant, key, wakeup).await)
    }
    async fn due_waits(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, Wait)>> {
        self.fault().await?;
        self.inner.due_waits(now, limit).await
    }
    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        self.fault().await?;
        self.inner.next_due().await
    }
}

#[async_trait]
impl LeaseStore for FlakyStore {
    async fn claim_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.claim_run(tenant, id, owner, until, now).await)
    }
    async fn claim_runs(
        &self,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.claim_runs(owner, until, now, limit).await)
    }
    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[RunId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunId>> {
        self.fault().await?;
        self.answer(self.inner.renew_leases(owner, runs, until).await)
    }
    async fn release_run(&self, id: RunId, owner: &str) -> StoreResult<()> {
        self.fault().await?;
        self.answer(self.inner.release_run(id, owner).await)
    }
}

#[async_trait]
impl AuditStore for FlakyStore {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.fault().await?;
        self.answer(self.inner.append_audit(entry).await)
    }
    async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.fault().await?;
        self.inner.audit_log(tenant, filter).await
    }
}

/// Connections are not what these tests break: every call goes through.
#[async_trait]
impl ConnectionStore for FlakyStore {
    async fn save_connection(&self, connection: &StoredConnection) -> StoreResult<()> {
        self.fault().await?;
        self.inner.save_connection(connection).await
    }
    async fn connection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<StoredConnection>> {
        self.fault().await?;
        self.inner.connection(tenant, id).await
    }
    async fn connections(&self, tenant: &TenantId) -> StoreResult<Vec<StoredConnection>> {
        self.fault().await?;
        self.inner.connections(tenant).await
    }
    async fn mark_tested(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.fault().await?;
        self.inner.mark_tested(tenant, id, at).await
    }
    async fn connections_sealed_with(
        &self,
        key_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredConnection>> {
        self.fault().await?;
        self.inner.connections_sealed_with(key_id, limit).await
    }
}

/// Datasets are not what these tests break: every call goes through.
#[async_trait]
impl DatasetStore for FlakyStore {
    async fn put_dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        run: RunId,
        node: &concertmaster_core::NodeId,
        items: &[concertmaster_core::Item],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.inner
            .put_dataset(tenant, name, run, node, items, at)
            .await
    }
    async fn dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>> {
        self.fault().await?;
        self.inner.dataset(tenant, name, filter).await
    }
}

/// Forms are not what these tests break: every call goes through.
#[async_trait]
impl FormStore for FlakyStore {
    async fn insert_form(&self, tenant: &TenantId, form: &FormSchema) -> StoreResult<()> {
        self.fault().await?;
        self.inner.insert_form(tenant, form).await
    }
    async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> StoreResult<Option<FormSchema>> {
        self.fault().await?;
        self.inner.form(tenant, id, version).await
    }
    async fn insert_link(&self, link: &FormLink) -> StoreResult<()> {
        self.fault().await?;
        self.inner.insert_link(link).await
    }
    async fn link(&self, token_hash: &str) -> StoreResult<Option<FormLink>> {
        self.fault().await?;
        self.inner.link(token_hash).await
    }
    async fn insert_response(
        &self,
        response: &FormResponse,
        link: Option<&str>,
    ) -> StoreResult<()> {
        self.fault().await?;
        self.inner.insert_response(response, link).await
    }
    async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
    ) -> StoreResult<Vec<FormResponse>> {
        self.fault().await?;
        self.inner.responses(tenant, filter).await
    }
    async fn review_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        review: &Review,
    ) -> StoreResult<FormResponse> {
        self.fault().await?;
        self.inner.review_response(tenant, id, review).await
    }
    async fn erase_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.fault().await?;
        self.inner.erase_response(tenant, id, data, at).await
    }
    async fn delete_responses(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.fault().await?;
        self.inner.delete_responses(tenant, form_id, before).await
    }
}

/// An engine on `store` with the test nodes, configured further by `configure`.
async fn engine_on(
    store: &FlakyStore,
    log: &Arc<Log>,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> Engine {
    configure(
        Engine::builder()
            .store(store.clone())
            .registry(registry(log)),
    )
    .build()
    .await
    .expect("builds")
}

/// Retries store calls for `retry`, then leaves the run to the recovery
/// sweep, which looks every 100 ms.
fn recovering(retry: Duration) -> impl FnOnce(EngineBuilder) -> EngineBuilder {
    move |b| {
        b.store_retry_for(retry)
            .recovery_interval(Duration::from_millis(100))
    }
}

fn chain() -> WorkflowDefinition {
    WorkflowDefinition::from_value(workflow(
        "chain",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            ("b", "pass", json!({})),
            ("c", "pass", json!({})),
        ],
        &[("start", "a"), ("a", "b"), ("b", "c")],
    ))
    .expect("parses")
}

#[tokio::test]
async fn writes_refused_now_and_then_are_retried_and_nothing_runs_twice() {
    let store = FlakyStore::new(3);
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log, |b| b).await;
    let tenant = TenantId::new("acme");
    let wf = engine.publish(&tenant, chain()).await.expect("publishes");
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(engine.start(&wf, json!({})).await.expect("starts"));
    }
    for run in runs {
        let done = engine.settled(&tenant, run).await.expect("settles");
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    }
    assert!(
        store.refused.load(Ordering::SeqCst) > 5,
        "the store did refuse writes"
    );
    for node in ["start", "a", "b", "c"] {
        assert_eq!(log.attempts(node), 5, "{node} ran once per run");
    }
}

#[tokio::test]
async fn an_outage_longer_than_the_retry_period_leaves_the_run_for_the_next_engine() {
    let store = FlakyStore::new(0);
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log, |b| {
        b.store_retry_for(Duration::from_millis(200))
    })
    .await;
    let tenant = TenantId::new("acme");
    let wf = engine.publish(&tenant, chain()).await.expect("publishes");
    store.down.store(true, Ordering::SeqCst);
    let run = engine
        .start(&wf, json!({}))
        .await
        .expect("the run is stored before the outage bites");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let stuck = engine.run(&tenant, run).await.expect("readable");
    assert!(
        stuck.run.status.is_in_flight(),
        "not failed for an outage: {:?}",
        stuck.run
    );
    engine.shutdown();

    store.down.store(false, Ordering::SeqCst);
    let next = engine_on(&store, &log, |b| b).await;
    let done = next.finished(&tenant, run).await.expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn the_same_engine_picks_up_a_run_once_the_store_is_back() {
    let store = FlakyStore::new(0);
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log, recovering(Duration::from_millis(100))).await;
    let tenant = TenantId::new("acme");
    let wf = engine.publish(&tenant, chain()).await.expect("publishes");
    store.down.store(true, Ordering::SeqCst);
    let run = engine.start(&wf, json!({})).await.expect("starts");
    tokio::time::sleep(Duration::from_millis(400)).await;
    store.down.store(false, Ordering::SeqCst);
    let done = tokio::time::timeout(Duration::from_secs(10), engine.finished(&tenant, run))
        .await
        .expect("picked up within a few recovery intervals")
        .expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(log.attempts("c"), 1);
}

/// The figure RELIABILITY.md reports: 1,000 runs while any store call may
/// fail (4%) or time out (1%), a write the store carried out may be
/// reported failed (2%), and the store goes down for longer than the
/// engine retries, now and then. Every run ends succeeded with all its node
/// records; none is lost, doubled, left running or half-written. The seed
/// is printed; `CONCERTMASTER_FAULT_SEED` replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_runs_ride_out_random_store_faults() {
    const RUNS: usize = 1_000;
    let seed = std::env::var("CONCERTMASTER_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let store = FlakyStore::chaotic(seed, 0.04, 0.01, 0.02);
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log, recovering(Duration::from_millis(150))).await;
    let tenant = TenantId::new("acme");
    let wf = loop {
        if let Ok(wf) = engine.publish(&tenant, chain()).await {
            break wf;
        }
    };

    // Outages longer than the engine's retry period: runs are left in
    // flight and picked up again by the recovery sweep.
    let outages = tokio::spawn({
        let down = Arc::clone(&store.down);
        async move {
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                down.store(true, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(250)).await;
                down.store(false, Ordering::SeqCst);
            }
        }
    });

    let mut runs = Vec::with_capacity(RUNS);
    let mut refused_starts = 0;
    let mut stored_anyway = 0;
    while runs.len() < RUNS {
        // A start that failed may have stored its run all the same (its
        // answer lost): the host starts again under the same key, as it
        // would with an order number, and gets the run that was stored.
        let key = format!("order-{}", runs.len());
        match engine.start_once(&wf, None, &key, json!({})).await {
            Ok((run, started)) => {
                stored_anyway += usize::from(!started);
                runs.push(run);
            }
            Err(_) => refused_starts += 1,
        }
    }
    outages.await.expect("outage task");

    // One listing per look: every run the store holds, started or not.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let stored = loop {
        let stored = store
            .inner
            .runs(&tenant, &RunFilter::all().limit(10 * RUNS))
            .await
            .expect("reads");
        let unfinished: Vec<_> = stored.iter().filter(|r| !r.status.is_terminal()).collect();
        if unfinished.is_empty() {
            break stored;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seed {seed}: {} runs never ended, e.g. {:?}",
            unfinished.len(),
            unfinished[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(
        stored.len(),
        RUNS,
        "seed {seed}: no run is stored twice or missing"
    );
    let ids: std::collections::HashSet<RunId> = stored.iter().map(|r| r.id).collect();
    assert!(
        runs.iter().all(|id| ids.contains(id)),
        "seed {seed}: every started run is stored"
    );
    for run in &stored {
        let id = run.id;
        assert_eq!(run.status, RunStatus::Succeeded, "seed {seed}: {run:?}");
        let nodes = store
            .inner
            .node_executions(&tenant, id)
            .await
            .expect("reads");
        assert_eq!(nodes.len(), 4, "seed {seed}: run {id} has {nodes:?}");
        assert!(
            nodes
                .iter()
                .all(|n| n.status == NodeStatus::Succeeded && n.output.is_some()),
            "seed {seed}: run {id} is half-written: {nodes:?}"
        );
    }
    let executions: u32 = ["start", "a", "b", "c"]
        .iter()
        .map(|n| log.attempts(n))
        .sum();
    let reexecuted = executions as usize - 4 * RUNS;
    let injected = store
        .chaos
        .as_ref()
        .map_or(0, |c| c.injected.load(Ordering::SeqCst));
    let lost = store
        .chaos
        .as_ref()
        .map_or(0, |c| c.lost_answers.load(Ordering::SeqCst));
    let refused = store.refused.load(Ordering::SeqCst);
    eprintln!(
        "fault injection: seed {seed}; {RUNS} runs, {injected} calls failed or timed out at random, \
         {lost} writes carried out and reported failed, {refused} writes refused during 6 outages, \
         {refused_starts} starts failed and were made again under their key ({stored_anyway} of \
         them had stored their run); runs lost 0, doubled 0, \
         left running 0, half-written 0; {reexecuted} node re-executions (a node whose result \
         could not be committed runs again, with the same idempotency key)"
    );
    assert!(
        injected > 100 && lost > 50 && refused > 0,
        "seed {seed}: faults were injected"
    );
    let keys = log.keys.lock().expect("log lock");
    let distinct: std::collections::HashSet<&String> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        4 * RUNS,
        "one idempotency key per node and run"
    );
}

#[tokio::test]
async fn an_engine_builds_while_the_store_is_unavailable() {
    let store = FlakyStore::chaotic(1, 1.0, 0.0, 0.0);
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log, |b| b).await;
    let tenant = TenantId::new("acme");
    assert!(
        engine.publish(&tenant, chain()).await.is_err(),
        "every call fails while it is down"
    );
}
