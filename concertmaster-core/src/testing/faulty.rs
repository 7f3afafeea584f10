//! [`FaultyStore`]: a store that fails on purpose, the way databases do,
//! for testing that a workflow and its host ride out outages.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    content::ContentId,
    node::{Resumed, Wakeup},
    run::{NodeExecution, RunFilter, Wait},
    store::{
        AuditEntry, AuditFilter, AuditStore, ContentStore, DeliveryAudit, Epoch, HeldWakeup,
        LeaseRequest, LeaseStore, RunClaim, RunMigration, RunStart, RunStore, StoreError,
        StoreResult, WaitStore, Woken, WorkflowStore,
    },
    Run, RunId, RunStatus, Store, TenantId, WorkflowDefinition, WorkflowId,
};

/// Wraps a store and makes its calls fail as a database's do: an outage
/// refusing writes ([`FaultyStore::refuse_writes`]), every n-th write
/// refused ([`FaultyStore::refuse_every_nth_write`]), and at random
/// ([`FaultyStore::with_chaos`]) calls failing at once, timing out, or
/// writes carried out and reported failed (the connection dropped after
/// the commit). Every failure is `StoreError::Unavailable`, which the
/// engine retries. Clones share their faults and the wrapped store.
///
/// ```
/// use concertmaster_core::testing::{Chaos, FaultyStore, TestEngine};
/// use concertmaster_core::{Engine, InMemoryStore, TenantId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = FaultyStore::new(InMemoryStore::new())
///     .with_chaos(Chaos::new(7).fail(0.05).lost(0.02));
/// let engine = Engine::builder().store(store.clone()).build().await?;
/// // ... start runs, then check what they left in `store.inner()`,
/// // which answers without faults ...
/// store.refuse_writes(true); // an outage begins
/// store.refuse_writes(false); // and ends
/// println!("{:?}", store.report());
/// # let _ = (engine, TenantId::new("t"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    /// The wrapped store's content store, faulted here too.
    contents: Option<Arc<dyn ContentStore>>,
    faults: Arc<Faults>,
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("report", &self.report())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Faults {
    refusing: AtomicBool,
    every: AtomicUsize,
    writes: AtomicUsize,
    refused: AtomicUsize,
    chaos: Mutex<Option<(Chaos, fastrand::Rng)>>,
    failed: AtomicUsize,
    lost: AtomicUsize,
}

/// Random faults for [`FaultyStore::with_chaos`], from a seed so that a
/// failing test can be replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chaos {
    seed: u64,
    fail: f64,
    slow: f64,
    lost: f64,
    delay: Duration,
}

impl Chaos {
    /// No faults yet, drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            fail: 0.0,
            slow: 0.0,
            lost: 0.0,
            delay: Duration::from_millis(20),
        }
    }

    /// Each call fails before it reaches the store with probability `p`.
    pub fn fail(mut self, p: f64) -> Self {
        self.fail = p;
        self
    }

    /// Each call times out with probability `p`: it fails after the
    /// delay ([`Chaos::delay`], 20 ms unless set) without reaching the store.
    pub fn slow(mut self, p: f64) -> Self {
        self.slow = p;
        self
    }

    /// Each write the store carried out is reported failed with
    /// probability `p`: the change is made, the caller sees an error.
    pub fn lost(mut self, p: f64) -> Self {
        self.lost = p;
        self
    }

    /// How long a call that times out takes to fail.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// What a [`FaultyStore`] did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FaultReport {
    /// Calls failed or timed out at random before they reached the store.
    pub failed: usize,
    /// Writes carried out and reported failed.
    pub lost_answers: usize,
    /// Writes refused by an outage or by `refuse_every_nth_write`.
    pub refused_writes: usize,
}

impl FaultyStore {
    /// Wraps `inner`; no faults until configured.
    pub fn new(inner: impl Store + 'static) -> Self {
        Self::wrap(Arc::new(inner))
    }

    /// Wraps a shared store; no faults until configured.
    pub fn wrap(inner: Arc<dyn Store>) -> Self {
        Self {
            contents: inner.content_store(),
            inner,
            faults: Arc::default(),
        }
    }

    /// Refuses every `n`-th write (0: none).
    pub fn refuse_every_nth_write(self, n: usize) -> Self {
        self.faults.every.store(n, Ordering::SeqCst);
        self
    }

    /// Adds random faults.
    pub fn with_chaos(self, chaos: Chaos) -> Self {
        let rng = fastrand::Rng::with_seed(chaos.seed);
        *self.chaos() = Some((chaos, rng));
        self
    }

    /// Starts (`true`) or ends an outage: while it lasts, writes fail as an
    /// unreachable database's would; reads still answer.
    pub fn refuse_writes(&self, refusing: bool) {
        self.faults.refusing.store(refusing, Ordering::SeqCst);
    }

    /// The wrapped store, which answers without faults: for checking what
    /// runs left behind.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    /// What was injected so far.
    pub fn report(&self) -> FaultReport {
        FaultReport {
            failed: self.faults.failed.load(Ordering::SeqCst),
            lost_answers: self.faults.lost.load(Ordering::SeqCst),
            refused_writes: self.faults.refused.load(Ordering::SeqCst),
        }
    }

    fn chaos(&self) -> std::sync::MutexGuard<'_, Option<(Chaos, fastrand::Rng)>> {
        self.faults
            .chaos
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A random failure before the call reaches the store, or none.
    async fn fault(&self) -> StoreResult<()> {
        let drawn = self
            .chaos()
            .as_mut()
            .map(|(chaos, rng)| (*chaos, rng.f64()));
        let Some((chaos, roll)) = drawn else {
            return Ok(());
        };
        if roll < chaos.fail {
            self.faults.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection reset by peer".into(),
            });
        }
        if roll < chaos.fail + chaos.slow {
            self.faults.failed.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(chaos.delay).await;
            return Err(StoreError::Unavailable {
                message: "statement timed out".into(),
            });
        }
        Ok(())
    }

    /// An outage's or the n-th write's refusal, or none.
    fn write(&self) -> StoreResult<()> {
        let n = self.faults.writes.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.faults.every.load(Ordering::SeqCst);
        if self.faults.refusing.load(Ordering::SeqCst) || (every > 0 && n % every == 0) {
            self.faults.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection refused".into(),
            });
        }
        Ok(())
    }

    /// `result` of a write the store carried out, or, now and then, the
    /// failure its caller sees when the answer is lost on the way back.
    fn answer<T>(&self, result: StoreResult<T>) -> StoreResult<T> {
        let lost = result.is_ok()
            && self
                .chaos()
                .as_mut()
                .is_some_and(|(chaos, rng)| rng.f64() < chaos.lost);
        if lost {
            self.faults.lost.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Unavailable {
                message: "connection reset before the answer arrived".into(),
            });
        }
        result
    }
}

#[async_trait]
impl WorkflowStore for FaultyStore {
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
impl RunStore for FaultyStore {
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
    async fn update_run(&self, run: &Run, epoch: Epoch) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.update_run(run, epoch).await)
    }
    async fn settle_run(
        &self,
        run: &Run,
        owner: &str,
        epoch: Epoch,
        steps: &[NodeExecution],
    ) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.settle_run(run, owner, epoch, steps).await)
    }
    async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        self.fault().await?;
        self.inner.runs(tenant, filter).await
    }
    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(
            self.inner
                .save_node_execution(tenant, execution, epoch)
                .await,
        )
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
        epoch: Option<Epoch>,
    ) -> StoreResult<Option<Run>> {
        self.write()?;
        self.fault().await?;
        self.answer(
            self.inner
                .end_run(tenant, id, status, reason, at, epoch)
                .await,
        )
    }
    async fn migrate_run(&self, migration: &RunMigration<'_>) -> StoreResult<()> {
        self.fault().await?;
        self.answer(self.inner.migrate_run(migration).await)
    }
    async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.fault().await?;
        self.inner.runs_in_flight().await
    }
}

#[async_trait]
impl WaitStore for FaultyStore {
    async fn suspend_node(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<Option<Resumed>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.suspend_node(tenant, execution, epoch).await)
    }
    async fn deliver(
        &self,
        tenant: &TenantId,
        wakeup: &HeldWakeup,
        lease: Option<LeaseRequest<'_>>,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Woken>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.deliver(tenant, wakeup, lease, audit).await)
    }
    async fn held_wakeups(&self, tenant: &TenantId) -> StoreResult<Vec<HeldWakeup>> {
        self.fault().await?;
        self.inner.held_wakeups(tenant).await
    }
    async fn expire_wakeups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, HeldWakeup)>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.expire_wakeups(now, limit).await)
    }
    async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> StoreResult<bool> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.discard_wakeup(tenant, key).await)
    }
    async fn take_wait(
        &self,
        tenant: &TenantId,
        key: &str,
        wakeup: Wakeup,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Wait>> {
        self.fault().await?;
        self.answer(self.inner.take_wait(tenant, key, wakeup, audit).await)
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
impl LeaseStore for FaultyStore {
    async fn claim_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Epoch>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.claim_run(tenant, id, owner, until, now).await)
    }
    async fn claim_runs(&self, claim: &RunClaim<'_>) -> StoreResult<Vec<(TenantId, RunId)>> {
        self.write()?;
        self.fault().await?;
        self.answer(self.inner.claim_runs(claim).await)
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
impl AuditStore for FaultyStore {
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

impl Store for FaultyStore {
    fn content_store(&self) -> Option<Arc<dyn ContentStore>> {
        self.contents.as_ref()?;
        Some(Arc::new(self.clone()))
    }
}

impl FaultyStore {
    fn content(&self) -> StoreResult<&Arc<dyn ContentStore>> {
        self.contents
            .as_ref()
            .ok_or_else(|| StoreError::Unavailable {
                message: "the wrapped store keeps no content".into(),
            })
    }
}

#[async_trait]
impl ContentStore for FaultyStore {
    async fn put_chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
        bytes: &[u8],
    ) -> StoreResult<()> {
        self.write()?;
        self.fault().await?;
        self.answer(self.content()?.put_chunk(tenant, id, seq, bytes).await)
    }
    async fn chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.fault().await?;
        self.content()?.chunk(tenant, id, seq).await
    }
    async fn delete_content(&self, tenant: &TenantId, id: ContentId) -> StoreResult<u64> {
        self.write()?;
        self.fault().await?;
        self.answer(self.content()?.delete_content(tenant, id).await)
    }
}
