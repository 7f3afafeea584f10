//! The engine: publishes workflows, starts and drives runs, resumes waits.

mod actor;
pub use actor::{acting_as, current_actor};
mod attempt;
mod driver;
#[cfg(feature = "testing")]
pub(crate) mod hooks;
mod migrate;
pub use migrate::Migration;
mod rerun;
mod stream;
pub use rerun::{RerunBatch, RerunFrom, RerunReport, RerunVersion};
pub(crate) use stream::{Inlet, Outlet};
mod timers;
mod watch;

/// Keyed by ids the engine made: a fast hash, looked up on every step.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::item::items_from_value;
use crate::node::Wakeup;
use crate::registry::NodeRegistry;
use crate::run::{PreparedRun, Run, RunDetail, RunFilter, RunParent, RunStatus};
use crate::store::{
    AuditAction, AuditEntry, DeliveryAudit, Epoch, HeldWakeup, InMemoryStore, LeaseRequest,
    RunStart, Store, StoreError, StoreErrorKind, StoreResult, Woken,
};
use crate::telemetry;
use crate::validate::{validate, ValidatedWorkflow, ValidationError};
use crate::workflow::{RetryPolicy, WorkflowDefinition};

/// Runs workflows inside the host's service.
///
/// Cheap to clone: clones share one engine. Build it with [`Engine::builder`]
/// on a tokio runtime.
///
/// ```
/// # use concertmaster_core::*;
/// # use concertmaster_core::{node::NodeCategory, workflow::NodeSpec};
/// # use async_trait::async_trait;
/// # struct Hello;
/// # #[async_trait]
/// # impl Node for Hello {
/// #     async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
/// #         Ok(NodeOutcome::Done(input))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = NodeRegistry::new();
/// registry.register_node(NodeDescriptor::new("hello", NodeCategory::Trigger), Hello)?;
/// let engine = Engine::builder().registry(registry).build().await?;
///
/// let tenant = TenantId::new("acme");
/// let workflow = engine
///     .publish(&tenant, WorkflowDefinition::new("greet", "Greet").node(NodeSpec::new("hi", "hello")))
///     .await?;
/// let run = engine.start(&workflow, serde_json::json!({ "name": "Ada" })).await?;
/// let run = engine.settled(&tenant, run).await?;
/// assert_eq!(run.status, RunStatus::Succeeded);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Most items one port of a node's output, or a run's trigger, holds in
/// memory unless the engine is told otherwise
/// ([`EngineBuilder::max_port_items`]).
pub const DEFAULT_MAX_PORT_ITEMS: usize = 100_000;

/// Most items a streaming edge's queue holds unless the engine is told
/// otherwise ([`EngineBuilder::edge_capacity`]).
pub const DEFAULT_EDGE_CAPACITY: usize = 64;

/// How long a wake-up that came before its wait is held for a node to
/// suspend on its key, unless the engine is told otherwise
/// ([`EngineBuilder::held_wakeup_ttl`]): 7 days.
pub const DEFAULT_HELD_WAKEUP_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Limits and defaults of an engine.
#[derive(Debug, Clone)]
struct Limits {
    max_concurrent_nodes: usize,
    max_concurrent_nodes_per_run: usize,
    default_node_timeout: Option<Duration>,
    default_retry: RetryPolicy,
    timer_poll_interval: Duration,
    store_retry_for: Duration,
    recovery_interval: Duration,
    lease_ttl: Duration,
    held_wakeup_ttl: Duration,
    max_active_runs: usize,
    max_active_runs_per_tenant: Option<usize>,
    content_threshold: Option<usize>,
    max_port_items: usize,
    edge_capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_concurrent_nodes: 1024,
            max_concurrent_nodes_per_run: 64,
            default_node_timeout: Some(Duration::from_secs(300)),
            default_retry: RetryPolicy::none(),
            timer_poll_interval: Duration::from_secs(1),
            store_retry_for: Duration::from_secs(60),
            recovery_interval: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(30),
            held_wakeup_ttl: DEFAULT_HELD_WAKEUP_TTL,
            max_active_runs: 1000,
            max_active_runs_per_tenant: None,
            content_threshold: None,
            max_port_items: DEFAULT_MAX_PORT_ITEMS,
            edge_capacity: DEFAULT_EDGE_CAPACITY,
        }
    }
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    registry: Arc<NodeRegistry>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    node_permits: Arc<Semaphore>,
    workflows: Mutex<HashMap<(TenantId, WorkflowId, u32), ValidatedWorkflow>>,
    active: Mutex<Active>,
    /// Who waits for which run (`Engine::settled`, `Engine::finished`).
    watchers: watch::Watchers,
    timer_wake: Arc<Notify>,
    shutdown: CancellationToken,
    /// This engine's name on the leases it holds.
    owner: String,
    #[cfg(feature = "testing")]
    pub(crate) hooks: hooks::Hooks,
    /// Set when a run was left in the store for want of room; the
    /// background loop then claims work as soon as a driver retires.
    backlog: std::sync::atomic::AtomicBool,
}

struct ActiveRun {
    tenant: TenantId,
    signals: mpsc::UnboundedSender<Signal>,
    task: tokio::task::AbortHandle,
}

/// The runs this engine drives, and how many of each tenant.
#[derive(Default)]
struct Active {
    runs: HashMap<RunId, ActiveRun>,
    per_tenant: HashMap<TenantId, usize>,
}

impl Active {
    fn len(&self) -> usize {
        self.runs.len()
    }

    fn get(&self, id: &RunId) -> Option<&ActiveRun> {
        self.runs.get(id)
    }

    fn insert(&mut self, id: RunId, run: ActiveRun) {
        *self.per_tenant.entry(run.tenant.clone()).or_default() += 1;
        if let Some(replaced) = self.runs.insert(id, run) {
            self.forget(&replaced.tenant);
        }
    }

    fn remove(&mut self, id: &RunId) {
        if let Some(run) = self.runs.remove(id) {
            self.forget(&run.tenant);
        }
    }

    fn forget(&mut self, tenant: &TenantId) {
        if let Some(n) = self.per_tenant.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }

    /// Whether one more run of `tenant` fits within `limits`.
    fn has_room(&self, tenant: &TenantId, limits: &Limits) -> bool {
        self.len() < limits.max_active_runs
            && limits
                .max_active_runs_per_tenant
                .is_none_or(|quota| self.per_tenant.get(tenant).copied().unwrap_or(0) < quota)
    }

    /// The tenants whose quota is full.
    fn full_tenants(&self, limits: &Limits) -> Vec<TenantId> {
        let Some(quota) = limits.max_active_runs_per_tenant else {
            return Vec::new();
        };
        self.per_tenant
            .iter()
            .filter(|(_, &n)| n >= quota)
            .map(|(tenant, _)| tenant.clone())
            .collect()
    }
}

/// What a run's driver is told from outside.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// A run this engine has just stored: drive it from this copy rather
    /// than read it back. `leased`: it was stored running, with this
    /// engine's lease, and has no node records yet.
    Start { run: Box<Run>, leased: bool },
    /// A wait of the run ended: look for nodes to execute again.
    Wake,
    /// A wait of the run ended through this engine, which took the run's
    /// lease at `epoch` in the same change: a driver started for it drives
    /// without a claim. A driver already running gets a `Wake`: its run
    /// may have given the lease up since.
    Leased { epoch: Epoch },
    /// Stop the run.
    Cancel { reason: String },
    /// This engine lost the run's lease: stop driving it, write nothing.
    Abandon,
}

/// What [`Engine::resume`] did with a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A node of this run waited on the key: it continues.
    Resumed(RunId),
    /// No node waited on the key yet: the wake-up is held for the first
    /// that suspends on it (or one held before is kept).
    Held,
}

impl Delivery {
    /// The run that continues, when a node waited.
    pub fn run(&self) -> Option<RunId> {
        match self {
            Self::Resumed(run) => Some(*run),
            Self::Held => None,
        }
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    registry: NodeRegistry,
    clock: Arc<dyn Clock>,
    limits: Limits,
    #[cfg(feature = "testing")]
    hooks: hooks::Hooks,
}

impl EngineBuilder {
    /// Persists through `store`; an [`InMemoryStore`] when not called.
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Persists through a store shared with other parts of the host.
    pub fn shared_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The node types workflows may use.
    pub fn registry(mut self, registry: NodeRegistry) -> Self {
        self.registry = registry;
        self
    }

    /// Reads time from `clock` (a [`ManualClock`](crate::clock::ManualClock) in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Most node attempts executing at once over all runs (default 1024).
    pub fn max_concurrent_nodes(mut self, n: usize) -> Self {
        self.limits.max_concurrent_nodes = n.max(1);
        self
    }

    /// Most node attempts executing at once within one run (default 64).
    pub fn max_concurrent_nodes_per_run(mut self, n: usize) -> Self {
        self.limits.max_concurrent_nodes_per_run = n.max(1);
        self
    }

    /// Timeout of an attempt of a node that sets none (default 5 minutes;
    /// `None` for no limit).
    pub fn default_node_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.default_node_timeout = timeout;
        self
    }

    /// Retry policy of a node that sets none (default: no retry).
    pub fn default_retry(mut self, retry: RetryPolicy) -> Self {
        self.limits.default_retry = retry;
        self
    }

    /// How often durable timers are checked when none is known to be due
    /// sooner (default 1 second).
    pub fn timer_poll_interval(mut self, every: Duration) -> Self {
        self.limits.timer_poll_interval = every.max(Duration::from_millis(1));
        self
    }

    /// How long a run's progress retries a store that reports itself
    /// unavailable before the run is given up on in this process (default 60
    /// seconds). The run stays in flight in the store, and an engine started
    /// later resumes it.
    pub fn store_retry_for(mut self, period: Duration) -> Self {
        self.limits.store_retry_for = period;
        self
    }

    /// How often the engine looks for runs in flight that no driver of its
    /// own is moving (left behind by a store outage) and picks them up
    /// (default 30 seconds).
    pub fn recovery_interval(mut self, every: Duration) -> Self {
        self.limits.recovery_interval = every.max(Duration::from_millis(10));
        self
    }

    /// Most runs this engine drives at once (default 1000). Runs past it
    /// wait in the store, unclaimed, until this engine has room or another
    /// engine on the same store takes them: that is how several engines
    /// share the work.
    pub fn max_active_runs(mut self, n: usize) -> Self {
        self.limits.max_active_runs = n.max(1);
        self
    }

    /// Moves every string value longer than `bytes` that a node emits, or
    /// that a run is started with, to the content store, leaving a
    /// [`ContentRef`](crate::content::ContentRef) (`{"$content": {...}}`) in the
    /// item: the run's records and the nodes after carry the reference,
    /// and a node reads the value a chunk at a time
    /// ([`NodeContext::contents`](crate::NodeContext::contents)). A start
    /// whose run the store refuses (a key used before) deletes what it
    /// moved. Off by default. [`Engine::prepare_run`] leaves the trigger
    /// as given: content written beside the host's transaction would
    /// outlive its rollback; files a host stores itself
    /// ([`Contents::put`](crate::content::Contents::put)) are references from the start.
    pub fn content_threshold(mut self, bytes: usize) -> Self {
        self.limits.content_threshold = Some(bytes);
        self
    }

    /// Most items one port of a node's output may hold (default
    /// [`DEFAULT_MAX_PORT_ITEMS`]): what every edge leaving the port
    /// carries, and the run's records keep, in memory. A node that emits
    /// more fails, fatally (routed to its `error` port where an edge leaves
    /// it), with the node, port and count in the message, and nothing of
    /// its output is stored; a run started with more trigger items is
    /// refused ([`Error::TooManyItems`]). Items past any bound go by
    /// reference instead: the node writes them with
    /// [`ItemWriter`](crate::content::ItemWriter), which waits for the store at each
    /// full chunk (a fast producer waits rather than growing memory), and
    /// emits the one item that refers to them; the node after reads them
    /// one at a time with [`ItemReader`](crate::content::ItemReader).
    pub fn max_port_items(mut self, n: usize) -> Self {
        self.limits.max_port_items = n.max(1);
        self
    }

    /// Most items a streaming edge's queue holds (default
    /// [`DEFAULT_EDGE_CAPACITY`]): a producer that sends with
    /// [`NodeContext::emit`](crate::NodeContext::emit) to a node whose
    /// join is [`Join::Stream`](crate::node::Join::Stream) waits while that many
    /// are sent and not yet read, so a stream of any length holds at most
    /// this many items per edge in memory.
    pub fn edge_capacity(mut self, n: usize) -> Self {
        self.limits.edge_capacity = n.max(1);
        self
    }

    /// Most runs of one tenant this engine drives at once (default: no
    /// quota beyond [`EngineBuilder::max_active_runs`]). A tenant at its
    /// quota has its further runs wait in the store, unclaimed, while
    /// other tenants' runs are driven: one tenant's burst cannot take all
    /// the room. Node executions are bounded too
    /// ([`EngineBuilder::max_concurrent_nodes`]): a run past either bound
    /// waits in the store or for a permit instead of growing memory.
    pub fn max_active_runs_per_tenant(mut self, n: usize) -> Self {
        self.limits.max_active_runs_per_tenant = Some(n.max(1));
        self
    }

    /// How long a wake-up that came before any node waited on its key
    /// ([`Engine::resume`] early, a form answer or a child run's end while
    /// the node is still suspending) is held for a node to suspend on the
    /// key ([`DEFAULT_HELD_WAKEUP_TTL`], 7 days). Past it the wake-up
    /// expires: no node takes it, the engine logs it, and it stays listed
    /// ([`Engine::held_wakeups`]) until the host discards it.
    pub fn held_wakeup_ttl(mut self, ttl: Duration) -> Self {
        self.limits.held_wakeup_ttl = ttl;
        self
    }

    /// Calls `hook` at each point of every node's suspension and waits for
    /// it (feature `testing`): a test delivers wake-ups there.
    #[cfg(feature = "testing")]
    pub fn suspension_hook(mut self, hook: hooks::SuspensionHook) -> Self {
        self.hooks.suspension = Some(hook);
        self
    }

    /// How long this engine's hold on a run lasts without renewal (default
    /// 30 seconds). The engine renews its leases every third of it; when a
    /// process dies, its runs are taken over by another engine on the same
    /// store once their leases expire.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.limits.lease_ttl = ttl.max(Duration::from_millis(30));
        self
    }

    /// Builds the engine, then resumes every run the store holds in flight
    /// and starts the durable-timer loop and the lease-renewal loop. Must be
    /// called on a tokio runtime.
    /// A store that is unavailable at that moment does not fail the build:
    /// the engine's recovery sweep resumes the runs once the store answers.
    pub async fn build(self) -> Result<Engine> {
        let store = self.store.unwrap_or_else(|| Arc::new(InMemoryStore::new()));
        let inner = Arc::new(Inner {
            store,
            registry: Arc::new(self.registry),
            clock: self.clock,
            node_permits: Arc::new(Semaphore::new(self.limits.max_concurrent_nodes)),
            limits: self.limits,
            workflows: Mutex::new(HashMap::default()),
            active: Mutex::new(Active::default()),
            watchers: watch::Watchers::default(),
            timer_wake: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
            owner: format!("engine-{}", RunId::new()),
            backlog: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "testing")]
            hooks: self.hooks,
        });
        // An outage is not a failure here either: the background loop's
        // recovery sweep picks the runs up once the store answers.
        match inner.pick_up_stranded().await {
            Err(Error::Store(err)) if err.is_retryable() => {
                tracing::warn!(error = %err, "runs in flight not picked up yet; the recovery sweep tries again");
            }
            result => {
                result?;
            }
        }
        tokio::spawn(timers::timer_loop(
            Arc::downgrade(&inner),
            Arc::clone(&inner.timer_wake),
            inner.shutdown.clone(),
        ));
        tokio::spawn(timers::lease_loop(
            Arc::downgrade(&inner),
            inner.shutdown.clone(),
        ));
        Ok(Engine { inner })
    }
}

/// A workflow version that passed validation and is stored: what runs start from.
#[derive(Debug, Clone)]
pub struct PublishedWorkflow {
    tenant: TenantId,
    workflow: ValidatedWorkflow,
}

impl PublishedWorkflow {
    /// The tenant that owns it.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The workflow's id.
    pub fn id(&self) -> &WorkflowId {
        &self.workflow.definition.id
    }

    /// The version runs started from it are pinned to.
    pub fn version(&self) -> u32 {
        self.workflow.definition.version
    }

    /// The definition.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.workflow.definition
    }
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            registry: NodeRegistry::new(),
            clock: Arc::new(SystemClock),
            limits: Limits::default(),
            #[cfg(feature = "testing")]
            hooks: hooks::Hooks::default(),
        }
    }

    /// The node types this engine runs: the editor palette.
    pub fn registry(&self) -> &NodeRegistry {
        &self.inner.registry
    }

    /// The store this engine persists through.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Checks `def` against this engine's node types without storing it.
    pub fn validate(&self, def: &WorkflowDefinition) -> Result<ValidatedWorkflow, ValidationError> {
        validate(def, &self.inner.registry)
    }

    /// Validates `def` and stores it as the next version of its workflow
    /// (1 for a new one); the version number in `def` is ignored. Earlier
    /// versions, and runs pinned to them, are untouched.
    #[tracing::instrument(name = "publish", skip_all, fields(tenant = %tenant, workflow = %def.id))]
    pub async fn publish(
        &self,
        tenant: &TenantId,
        mut def: WorkflowDefinition,
    ) -> Result<PublishedWorkflow> {
        match &def.tenant {
            Some(found) if found != tenant => {
                return Err(Error::TenantMismatch {
                    id: def.id.clone(),
                    tenant: tenant.clone(),
                    found: found.clone(),
                })
            }
            _ => def.tenant = Some(tenant.clone()),
        }
        let store = &self.inner.store;
        let mut attempts_left = 3;
        let workflow = loop {
            let latest = store
                .workflow_versions(tenant, &def.id)
                .await?
                .last()
                .copied()
                .unwrap_or(0);
            def.version = latest + 1;
            let workflow = validate(&def, &self.inner.registry)?;
            match store.insert_workflow(tenant, &def).await {
                Ok(()) => break workflow,
                // Another publisher took this version number first: take the next.
                Err(err) if err.kind() == StoreErrorKind::Conflict && attempts_left > 1 => {
                    attempts_left -= 1
                }
                Err(err) => return Err(err.into()),
            }
        };
        self.audit(
            tenant,
            AuditAction::Create,
            "workflow",
            format!("{}@{}", def.id, def.version),
            Value::Null,
        )
        .await;
        self.inner.cache_workflow(tenant, &workflow);
        Ok(PublishedWorkflow {
            tenant: tenant.clone(),
            workflow,
        })
    }

    /// Version `version` of workflow `id` (the latest when `None`), ready to start.
    pub async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<PublishedWorkflow> {
        let workflow = self.inner.load_workflow(tenant, id, version).await?;
        Ok(PublishedWorkflow {
            tenant: tenant.clone(),
            workflow,
        })
    }

    /// The published versions of workflow `id`, ascending.
    pub async fn versions(&self, tenant: &TenantId, id: &WorkflowId) -> Result<Vec<u32>> {
        Ok(self.inner.store.workflow_versions(tenant, id).await?)
    }

    /// Starts a run of `workflow` with `trigger` (a JSON object, or an array
    /// of objects for several items) as the input of every node without
    /// inputs. Returns once the run is stored; it executes in the background.
    ///
    /// A failed call may still have stored the run: a database can commit
    /// and lose its answer on the way back. Where starting twice would be
    /// wrong, start with [`Engine::start_once`] and a key of the host's own
    /// (an order number, a request id) and call it again on failure; the
    /// second call finds the run the first one stored.
    pub async fn start(&self, workflow: &PublishedWorkflow, trigger: Value) -> Result<RunId> {
        self.start_run(workflow, None, trigger).await
    }

    /// Starts a run at one trigger node of `workflow`; its other nodes
    /// without inputs (other triggers) are skipped.
    pub async fn start_at(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: &str,
        trigger: Value,
    ) -> Result<RunId> {
        self.start_at_with(workflow, trigger_node, trigger, None)
            .await
    }

    async fn start_at_with(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: &str,
        trigger: Value,
        id: Option<RunId>,
    ) -> Result<RunId> {
        let def = workflow.definition();
        let root = def
            .nodes
            .iter()
            .position(|n| n.id.as_str() == trigger_node)
            .filter(|&i| workflow.workflow.plan.incoming[i].is_empty());
        let Some(root) = root else {
            return Err(Error::NotATrigger {
                workflow: def.id.clone(),
                node: NodeId::new(trigger_node),
            });
        };
        self.start_run_with(workflow, Some(def.nodes[root].id.clone()), trigger, id)
            .await
    }

    /// Starts a run (at `trigger_node`, or at every trigger like
    /// [`Engine::start`]) unless a run of this workflow was started with the
    /// same `key` before, by this engine or another on the same store: a
    /// schedule's fire time, a webhook's idempotency key, a parent run's
    /// node. Returns the run, and whether this call started it.
    pub async fn start_once(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<&str>,
        key: &str,
        trigger: Value,
    ) -> Result<(RunId, bool)> {
        let id = keyed_run_id(workflow, key);
        let started = match trigger_node {
            Some(node) => self.start_at_with(workflow, node, trigger, Some(id)).await,
            None => self.start_run_with(workflow, None, trigger, Some(id)).await,
        };
        match started {
            Ok(id) => Ok((id, true)),
            Err(Error::Store(err)) if err.kind() == crate::store::StoreErrorKind::Conflict => {
                Ok((id, false))
            }
            Err(err) => Err(err),
        }
    }

    async fn start_run(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
    ) -> Result<RunId> {
        self.start_run_with(workflow, trigger_node, trigger, None)
            .await
    }

    async fn start_run_with(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
        id: Option<RunId>,
    ) -> Result<RunId> {
        let prepared = self.new_run(workflow, trigger_node, trigger, id, RunStatus::Pending)?;
        self.launch(workflow, prepared).await
    }

    /// Stores `prepared` and drives it here when there is room.
    async fn launch(&self, workflow: &PublishedWorkflow, prepared: PreparedRun) -> Result<RunId> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let PreparedRun { mut run, audit } = prepared;
        let moved = self.externalize_trigger(&mut run).await?;
        let stored = self.store_started(&mut run, audit).await;
        if let Err(err) = stored {
            // Refused (an earlier start with the same key stored its own
            // run): what was moved for this one belongs to nothing. After
            // an outage the run may have been stored all the same, so its
            // content stays.
            if matches!(&err, Error::Store(e) if !e.is_retryable()) {
                self.delete_contents(&run.tenant, &moved).await;
            }
            return Err(err);
        }
        let (tenant, id, leased) = (run.tenant.clone(), run.id, run.status == RunStatus::Running);
        self.inner.cache_workflow(&tenant, &workflow.workflow);
        let taken = self.inner.signal(
            tenant,
            id,
            Signal::Start {
                run: Box::new(run),
                leased,
            },
        );
        if leased && !taken {
            // The engine filled up meanwhile.
            self.inner.give_back_lease(id).await;
        }
        Ok(id)
    }

    /// Moves the trigger's values past the content threshold to the
    /// content store, as a node's output is moved
    /// ([`EngineBuilder::content_threshold`]); returns what it stored.
    async fn externalize_trigger(&self, run: &mut Run) -> Result<Vec<crate::content::ContentRef>> {
        let Some(threshold) = self.inner.limits.content_threshold else {
            return Ok(Vec::new());
        };
        if !run
            .trigger
            .iter()
            .any(|item| attempt::holds_large(item, threshold))
        {
            return Ok(Vec::new());
        }
        let contents =
            crate::content::Contents::new(Arc::clone(&self.inner.store), run.tenant.clone());
        let mut moved = Vec::new();
        let result =
            attempt::externalize_items(&contents, &mut run.trigger, threshold, &mut moved).await;
        match result {
            Ok(()) => Ok(moved),
            Err(err) => {
                self.delete_contents(&run.tenant, &moved).await;
                Err(err.into())
            }
        }
    }

    /// Deletes `contents` of `tenant`, logging what could not be deleted.
    async fn delete_contents(&self, tenant: &TenantId, contents: &[crate::content::ContentRef]) {
        for content in contents {
            if let Err(err) = self.inner.store.delete_content(tenant, content.id).await {
                tracing::warn!(error = %err, content = %content.id, "content of a run not started stays stored");
            }
        }
    }

    /// Stores `run`, started: running, with this engine's lease and
    /// `audit`, when this engine has room for it; pending otherwise.
    async fn store_started(&self, run: &mut Run, audit: AuditEntry) -> Result<()> {
        // With room to drive it here, the run is stored running and leased
        // to this engine, with its audit entry, in one change; without, it
        // is stored pending for whichever engine has room first.
        let leased = self
            .inner
            .active()
            .has_room(&run.tenant, &self.inner.limits);
        run.status = if leased {
            RunStatus::Running
        } else {
            RunStatus::Pending
        };
        if leased {
            let start = RunStart {
                run,
                owner: &self.inner.owner,
                lease_until: self.inner.lease_until(run.created_at),
                audit: &audit,
            };
            self.inner.store.start_run(&start).await?;
        } else {
            self.inner.store.insert_run(run).await?;
            self.append_audit(audit).await;
        }
        Ok(())
    }

    /// Starts a run of `workflow` as the child of the node executing with
    /// `parent`, once per parent node: a node executed again (after a
    /// crash, or woken) finds the child it started. Returns the child and
    /// whether this call started it.
    ///
    /// The child records its parent ([`Run::parent`]). When it ends, the
    /// engine ends the parent node's wait on [`RunParent::wait_key`] with
    /// `{"childRun": <id>}`, so a node that suspended on that key
    /// executes again and finds the child ended; cancelling the parent
    /// cancels the child ([`Engine::cancel`]).
    pub async fn start_child(
        &self,
        workflow: &PublishedWorkflow,
        parent: &crate::NodeContext,
        trigger: Value,
    ) -> Result<(RunId, bool)> {
        let link = RunParent {
            run: parent.run_id(),
            node: parent.node_id().clone(),
        };
        let id = keyed_run_id(workflow, &link.wait_key());
        let mut prepared = self.new_run(workflow, None, trigger, Some(id), RunStatus::Pending)?;
        prepared.run.parent = Some(link);
        match self.launch(workflow, prepared).await {
            Ok(id) => Ok((id, true)),
            Err(Error::Store(err)) if err.kind() == crate::store::StoreErrorKind::Conflict => {
                Ok((id, false))
            }
            Err(err) => Err(err),
        }
    }

    /// A run of `workflow` with `trigger`, made ready for the host to store
    /// in a transaction of its own, so that the host's records and the run
    /// commit or roll back together (the SQL stores' `insert_run_in`).
    /// Nothing is stored or started here. Once the host's transaction has
    /// committed, [`Engine::pick_up`] drives the run at once; otherwise the
    /// recovery sweep of this engine or another finds it within its
    /// interval ([`EngineBuilder::recovery_interval`]).
    pub fn prepare_run(&self, workflow: &PublishedWorkflow, trigger: Value) -> Result<PreparedRun> {
        self.new_run(workflow, None, trigger, None, RunStatus::Pending)
    }

    fn new_run(
        &self,
        workflow: &PublishedWorkflow,
        trigger_node: Option<NodeId>,
        trigger: Value,
        id: Option<RunId>,
        status: RunStatus,
    ) -> Result<PreparedRun> {
        let items = items_from_value(trigger).map_err(|found| Error::InvalidTrigger {
            workflow: workflow.id().clone(),
            found,
        })?;
        let limit = self.inner.limits.max_port_items;
        if items.len() > limit {
            return Err(Error::TooManyItems {
                workflow: workflow.id().clone(),
                items: items.len(),
                limit,
            });
        }
        let now = self.inner.clock.now();
        let run = Run {
            id: id.unwrap_or_default(),
            tenant: workflow.tenant.clone(),
            workflow_id: workflow.id().clone(),
            workflow_version: workflow.version(),
            status,
            trigger_node,
            trigger: items,
            created_at: now,
            ended_at: None,
            error: None,
            origin: None,
            parent: None,
        };
        let audit = audit_entry(
            &run.tenant,
            now,
            AuditAction::Execute,
            "run",
            run.id.to_string(),
            serde_json::json!({ "workflow": run.workflow_id, "version": run.workflow_version }),
        );
        Ok(PreparedRun { run, audit })
    }

    /// Drives run `id` of `tenant` here, unless another engine already
    /// does: for a run the host stored itself ([`Engine::prepare_run`]),
    /// once its transaction has committed. Returns whether this engine
    /// drives it (not when another does, or this one already drives
    /// `max_active_runs`: the run then waits for the first with room);
    /// [`Error::RunNotFound`] when no such run is stored (the host's
    /// transaction rolled back).
    pub async fn pick_up(&self, tenant: &TenantId, id: RunId) -> Result<bool> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        if self.inner.is_active(id) {
            return Ok(true);
        }
        let now = self.inner.clock.now();
        let until = self.inner.lease_until(now);
        let claimed = self
            .inner
            .store
            .claim_run(tenant, id, &self.inner.owner, until, now)
            .await?;
        if claimed.is_none() {
            return match self.inner.store.run(tenant, id).await? {
                Some(_) => Ok(false),
                None => Err(Error::RunNotFound {
                    tenant: tenant.clone(),
                    id,
                }),
            };
        }
        let taken = self.inner.signal(tenant.clone(), id, Signal::Wake);
        if !taken {
            // Full: the run waits for another engine, or this one with room.
            self.inner.give_back_lease(id).await;
        }
        Ok(taken)
    }

    /// Delivers an event on `key` with `payload`. When a node waits on
    /// `key`, its wait ends and it is executed again, seeing the payload in
    /// [`NodeContext::resumed`](crate::NodeContext::resumed):
    /// [`Delivery::Resumed`]. When none does yet (the node is still on its
    /// way to suspending: a webhook answering faster than the workflow
    /// asks), the wake-up is held in the store, tenant-scoped, and the
    /// first node to suspend on the key continues with it at once:
    /// [`Delivery::Held`]. A held wake-up expires after
    /// [`EngineBuilder::held_wakeup_ttl`] (7 days) and is listed by
    /// [`Engine::held_wakeups`] until discarded; one already held on the
    /// key is kept, and this one dropped. Use
    /// [`resume_if_waiting`](Self::resume_if_waiting) for a wake-up that
    /// only matters to a node waiting now.
    #[tracing::instrument(name = "resume", skip(self, payload), fields(tenant = %tenant))]
    pub async fn resume(&self, tenant: &TenantId, key: &str, payload: Value) -> Result<Delivery> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let now = self.inner.clock.now();
        let held = HeldWakeup::new(key, payload, now, self.inner.limits.held_wakeup_ttl);
        let lease = self.inner.lease_request(now);
        // Recorded with the delivery, in the same change.
        let audit = DeliveryAudit {
            at: now,
            actor: actor::current_actor(),
        };
        let delivered = self
            .inner
            .store
            .deliver(tenant, &held, Some(lease), Some(&audit));
        let Some(woken) = delivered.await? else {
            return Ok(Delivery::Held);
        };
        self.inner.drive_woken(tenant.clone(), &woken).await;
        Ok(Delivery::Resumed(woken.wait.run_id))
    }

    /// Ends the wait on `key` with `payload`, as [`resume`](Self::resume)
    /// does, only when a node waits on it now; answers its run, or `None`
    /// (nothing is held).
    pub async fn resume_if_waiting(
        &self,
        tenant: &TenantId,
        key: &str,
        payload: Value,
    ) -> Result<Option<RunId>> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let wakeup = Wakeup::Event {
            key: key.to_string(),
            payload,
        };
        // Recorded with the wait's end, in the same change.
        let audit = DeliveryAudit {
            at: self.inner.clock.now(),
            actor: actor::current_actor(),
        };
        let taken = self
            .inner
            .store
            .take_wait(tenant, key, wakeup, Some(&audit));
        let Some(wait) = taken.await? else {
            return Ok(None);
        };
        self.inner.signal(tenant.clone(), wait.run_id, Signal::Wake);
        Ok(Some(wait.run_id))
    }

    /// Drives run `id` here after a store call of the host's or a service's
    /// ended one of its waits itself (a form answer stored with its
    /// wake-up: `FormStore::insert_response`). Should the process stop
    /// first, the engine's recovery sweep drives it.
    pub fn woken(&self, tenant: &TenantId, id: RunId) {
        self.inner.signal(tenant.clone(), id, Signal::Wake);
    }

    /// The wake-ups held for `tenant`: come before any node waited on
    /// their key, pending or expired (see [`Engine::resume`]), oldest first.
    pub async fn held_wakeups(&self, tenant: &TenantId) -> Result<Vec<HeldWakeup>> {
        Ok(self.inner.store.held_wakeups(tenant).await?)
    }

    /// Discards the wake-up held on `key`; whether there was one.
    pub async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> Result<bool> {
        let discarded = self.inner.store.discard_wakeup(tenant, key).await?;
        if discarded {
            self.audit(
                tenant,
                AuditAction::Delete,
                "wake-up",
                key.to_string(),
                serde_json::json!({}),
            )
            .await;
        }
        Ok(discarded)
    }

    /// Cancels run `id`: its executing nodes see their cancellation token
    /// fire and are stopped, its waits end, and its child runs still open
    /// (sub-workflows, [`Engine::start_child`]) are cancelled with it, to
    /// any depth. Returns the run once it stopped; a run that had already
    /// ended is returned as it was. Cancelling a cancelled run again
    /// cancels children that are still open, such as those left when the
    /// process stopped between the parent and its children.
    #[tracing::instrument(name = "cancel", skip(self), fields(tenant = %tenant, run = %id))]
    pub async fn cancel(&self, tenant: &TenantId, id: RunId, reason: &str) -> Result<Run> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let mut run = self.get_run(tenant, id).await?;
        if run.status.is_terminal() && run.status != RunStatus::Cancelled {
            return Ok(run);
        }
        if !run.status.is_terminal() {
            self.inner.signal(
                tenant.clone(),
                id,
                Signal::Cancel {
                    reason: reason.to_string(),
                },
            );
            self.audit(
                tenant,
                AuditAction::Cancel,
                "run",
                id.to_string(),
                serde_json::json!({ "reason": reason }),
            )
            .await;
            run = self.finished(tenant, id).await?;
        }
        // The parent first: once it has stopped, no node of it starts
        // another child.
        let open =
            RunFilter::statuses([RunStatus::Pending, RunStatus::Running, RunStatus::Waiting])
                .children_of(id)
                .limit(usize::MAX >> 1);
        let reason = format!("parent run {id} was cancelled: {reason}");
        for child in self.inner.store.runs(tenant, &open).await? {
            Box::pin(self.cancel(tenant, child.id, &reason)).await?;
        }
        Ok(run)
    }

    /// Waits until run `id` stops making progress on its own: it ended, or
    /// every unfinished node waits for an event or a time.
    pub async fn settled(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.wait_for(tenant, id, |run| !run.status.is_in_flight())
            .await
    }

    /// Waits until run `id` has ended (succeeded, failed or cancelled),
    /// through any waits it has.
    pub async fn finished(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.wait_for(tenant, id, |run| run.status.is_terminal())
            .await
    }

    async fn wait_for(
        &self,
        tenant: &TenantId,
        id: RunId,
        done: impl Fn(&Run) -> bool,
    ) -> Result<Run> {
        // A run driven here announces its stored state when its driver
        // retires, so waiting on it costs no store read. Watched first: a
        // driver seen active now retires after, and its event comes.
        let mut watch = self.inner.watchers.watch(id);
        let mut announced: Option<Arc<Run>> = None;
        loop {
            // A run whose driver is still here is not done moving: its
            // retirement will be announced, with the run as stored, so
            // reading the store now would only be read again.
            if !self.inner.is_active(id) {
                // An announced run that is not done yet may be stale: the
                // run can have moved again before the watch was renewed.
                let run = match announced.take().filter(|run| done(run)) {
                    Some(run) => Arc::unwrap_or_clone(run),
                    None => self.get_run(tenant, id).await?,
                };
                if done(&run) && !self.inner.is_active(id) {
                    return Ok(run);
                }
            }
            let event = tokio::select! {
                event = watch.event() => event,
                // A stopped engine drives nothing: the run will not move here.
                () = self.inner.shutdown.cancelled() => return Err(Error::ShutDown),
            };
            // Watch again before looking at the run, for the same reason.
            watch = self.inner.watchers.watch(id);
            announced = event.stored.filter(|run| run.tenant == *tenant);
        }
    }

    /// Run `id` with the record of each of its nodes, in workflow order.
    pub async fn run(&self, tenant: &TenantId, id: RunId) -> Result<RunDetail> {
        let run = self.get_run(tenant, id).await?;
        let mut nodes = self.inner.store.node_executions(tenant, id).await?;
        if let Ok(workflow) = self
            .inner
            .load_workflow(tenant, &run.workflow_id, Some(run.workflow_version))
            .await
        {
            let order = &workflow.plan.index;
            nodes.sort_by_key(|n| order.get(&n.node_id).copied().unwrap_or(usize::MAX));
        }
        Ok(RunDetail { run, nodes })
    }

    /// Runs passing `filter`, newest first.
    pub async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> Result<Vec<Run>> {
        Ok(self.inner.store.runs(tenant, filter).await?)
    }

    /// Wakes every node whose time has come. The engine does this on its own
    /// every poll interval; call it after advancing a manual clock.
    pub async fn fire_due_timers(&self) -> Result<usize> {
        self.inner.fire_due_timers().await
    }

    /// Stops the engine at once: timers stop and runs stop being driven
    /// where they are, as if the process ended. What was committed stays
    /// committed; an engine built later on the same store resumes the runs.
    /// Calls that would wait on this engine afterwards fail with
    /// [`Error::ShutDown`].
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let runs = std::mem::take(&mut *self.inner.active());
        for run in runs.runs.into_values() {
            run.task.abort();
        }
        self.inner.timer_wake.notify_one();
    }

    async fn get_run(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.inner
            .store
            .run(tenant, id)
            .await?
            .ok_or_else(|| Error::RunNotFound {
                tenant: tenant.clone(),
                id,
            })
    }

    async fn audit(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        entity_type: &str,
        entity_id: String,
        details: Value,
    ) {
        let at = self.inner.clock.now();
        self.append_audit(audit_entry(
            tenant,
            at,
            action,
            entity_type,
            entity_id,
            details,
        ))
        .await;
    }

    async fn append_audit(&self, entry: AuditEntry) {
        // The action is committed by now; failing the call would invite a
        // retry that repeats it. The failure is reported instead.
        if let Err(err) = self.inner.store.append_audit(&entry).await {
            tracing::error!(
                error = %err,
                action = ?entry.action,
                entity_type = %entry.entity_type,
                entity_id = %entry.entity_id,
                "audit entry could not be stored"
            );
        }
    }
}

/// An audit entry by the current actor.
fn audit_entry(
    tenant: &TenantId,
    at: chrono::DateTime<chrono::Utc>,
    action: AuditAction,
    entity_type: &str,
    entity_id: String,
    details: Value,
) -> AuditEntry {
    AuditEntry {
        tenant: tenant.clone(),
        at,
        actor: actor::current_actor(),
        action,
        entity_type: entity_type.to_string(),
        entity_id,
        details,
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.inner.registry)
            .field("limits", &self.inner.limits)
            .field("active_runs", &self.inner.active().len())
            .finish()
    }
}

impl Inner {
    fn active(&self) -> MutexGuard<'_, Active> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_active(&self, id: RunId) -> bool {
        self.active().runs.contains_key(&id)
    }

    /// Hands `signal` to the run's driver, starting one if none is running.
    /// Every change to a run in flight goes through its single driver.
    /// Returns whether a driver took it.
    pub(crate) fn signal(self: &Arc<Self>, tenant: TenantId, id: RunId, signal: Signal) -> bool {
        if self.shutdown.is_cancelled() {
            return false;
        }
        let mut active = self.active();
        if let Some(run) = active.get(&id) {
            let signal = match &signal {
                Signal::Leased { .. } => Signal::Wake,
                other => other.clone(),
            };
            if run.signals.send(signal).is_ok() {
                return true;
            }
        }
        if matches!(
            signal,
            Signal::Start { .. } | Signal::Wake | Signal::Leased { .. }
        ) && !active.has_room(&tenant, &self.limits)
        {
            // Full: the run waits in the store for this engine or another.
            self.backlog
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return false;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The receiver is alive until the driver below ends; it cannot be closed yet.
        let _ = tx.send(signal);
        // Boxed first: the driver's future is a few kilobytes, and spawning
        // moves what it is given several times on the way into its task.
        let task = tokio::spawn(Box::pin(driver::drive(
            Arc::clone(self),
            tenant.clone(),
            id,
            rx,
        )));
        active.insert(
            id,
            ActiveRun {
                tenant,
                signals: tx,
                task: task.abort_handle(),
            },
        );
        true
    }

    /// Called by a driver that found nothing left to do: it stops being the
    /// run's driver unless a signal came in meanwhile, which it gets back.
    pub(crate) fn retire(
        &self,
        id: RunId,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
        stored: Option<Run>,
    ) -> Option<Signal> {
        let mut active = self.active();
        if let Ok(signal) = signals.try_recv() {
            return Some(signal);
        }
        active.remove(&id);
        drop(active);
        if self.backlog.load(std::sync::atomic::Ordering::SeqCst) {
            self.timer_wake.notify_one();
        }
        // Nobody may be listening; that is fine.
        self.watchers.announce(
            id,
            watch::RunEvent {
                stored: stored.map(Arc::new),
            },
        );
        None
    }

    /// Ends the wait of the parent node of `child`, a run that has ended,
    /// so that the node executes again and finds it ended. In the
    /// background, delivered durably: when the parent's node has not
    /// suspended yet (it started the child and is about to), the wake-up is
    /// held in the store and the suspension takes it. A parent that has
    /// ended gets none.
    pub(crate) fn wake_parent(self: &Arc<Self>, child: &Run) {
        let Some(parent) = child.parent.clone() else {
            return;
        };
        let inner = Arc::clone(self);
        let (tenant, id) = (child.tenant.clone(), child.id);
        tokio::spawn(async move {
            let open = inner
                .durably("read parent run", || inner.store.run(&tenant, parent.run))
                .await;
            match open {
                Ok(Some(run)) if !run.status.is_terminal() => {}
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(error = %err, parent = %parent.run, "parent run not read; waking it all the same");
                }
            }
            let held = HeldWakeup::new(
                parent.wait_key(),
                serde_json::json!({ "childRun": id }),
                inner.clock.now(),
                inner.limits.held_wakeup_ttl,
            );
            let now = inner.clock.now();
            let lease = inner.lease_request(now);
            match inner
                .durably("wake parent", || {
                    inner.store.deliver(&tenant, &held, Some(lease), None)
                })
                .await
            {
                Ok(Some(woken)) => inner.drive_woken(tenant, &woken).await,
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(error = %err, parent = %parent.run, "parent node not woken; it wakes at its next check");
                }
            }
        });
    }

    /// Runs a store call, retrying with back-off while the store reports
    /// itself unavailable (a database restarting, a connection dropped), for
    /// up to the engine's `store_retry_for`. Other errors return at once.
    ///
    /// Not an `async fn`, which would keep its arguments twice in its state
    /// (rust-lang/rust#62958): every node transition awaits one of these.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub(crate) fn durably<'a, T, F, Fut>(
        &'a self,
        call: &'static str,
        mut op: F,
    ) -> impl std::future::Future<Output = StoreResult<T>> + 'a
    where
        T: 'a,
        F: FnMut() -> Fut + 'a,
        Fut: std::future::Future<Output = StoreResult<T>> + 'a,
    {
        async move {
            match op().await {
                // Boxed: the back-off's state would otherwise widen every
                // store call's future, and with it every node execution's.
                Err(err) if err.is_retryable() => Box::pin(self.retry_durably(call, op, err)).await,
                result => result,
            }
        }
    }

    /// `durably` after the first failure, `first`.
    async fn retry_durably<T, F, Fut>(
        &self,
        call: &'static str,
        mut op: F,
        first: StoreError,
    ) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        // The retry period runs from the first failure: reading the clock
        // before every store call would cost each node transition a read.
        let failing_since = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut err = first;
        loop {
            if failing_since.elapsed() >= self.limits.store_retry_for
                || self.shutdown.is_cancelled()
            {
                return Err(err);
            }
            tracing::warn!(error = %err, call, retry_in_ms = pause.as_millis() as u64, "store unavailable; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            match op().await {
                Err(again) if again.is_retryable() => err = again,
                result => return result,
            }
        }
    }

    /// Starts a driver for every run in flight that has none here: at
    /// start-up, the runs a stopped engine left; later, runs left behind by
    /// a store outage.
    pub(crate) async fn pick_up_stranded(self: &Arc<Self>) -> Result<usize> {
        let room = self
            .limits
            .max_active_runs
            .saturating_sub(self.active().len());
        if room == 0 {
            self.backlog
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(0);
        }
        let now = self.clock.now();
        let limit = room.min(256);
        let skip = self.active().full_tenants(&self.limits);
        let claim = crate::store::RunClaim {
            owner: &self.owner,
            until: self.lease_until(now),
            now,
            limit,
            per_tenant: self.limits.max_active_runs_per_tenant.unwrap_or(limit),
            skip: &skip,
        };
        let claimed = self.store.claim_runs(&claim).await?;
        let mut per_tenant: HashMap<&TenantId, usize> = HashMap::default();
        for (tenant, _) in &claimed {
            *per_tenant.entry(tenant).or_default() += 1;
        }
        let capped = per_tenant.values().any(|&n| n >= claim.per_tenant);
        if !skip.is_empty() || capped || claimed.len() == limit {
            // Runs of tenants at their quota, or past this claim's bounds,
            // may be waiting: look again as soon as a driver retires.
            self.backlog
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let mut picked = 0;
        for (tenant, run) in claimed {
            if self.is_active(run) {
                continue;
            }
            if self.signal(tenant, run, Signal::Wake) {
                picked += 1;
            } else {
                // Its tenant filled up meanwhile: the run waits for room.
                self.give_back_lease(run).await;
            }
        }
        if picked > 0 {
            tracing::info!(runs = picked, "resuming runs in flight");
        }
        Ok(picked)
    }

    /// Expires the wake-ups held past their time (see
    /// [`Engine::resume`]), logging each: no node takes them any more, and
    /// they stay listed until the host discards them.
    pub(crate) async fn expire_held_wakeups(&self) -> Result<usize> {
        let expired = self.store.expire_wakeups(self.clock.now(), 256).await?;
        for (tenant, held) in &expired {
            tracing::warn!(
                %tenant,
                key = %held.key,
                received_at = %held.received_at,
                "a wake-up held for a key no node waited on has expired; it stays listed \
                 (Engine::held_wakeups) until discarded"
            );
        }
        Ok(expired.len())
    }

    /// The lease this engine asks for with a delivery that may end a wait.
    pub(crate) fn lease_request(&self, now: chrono::DateTime<chrono::Utc>) -> LeaseRequest<'_> {
        LeaseRequest {
            owner: &self.owner,
            until: self.lease_until(now),
            now,
        }
    }

    /// Drives the run of a wait a delivery of this engine ended: with the
    /// lease taken in the same change when it was, else after a claim.
    /// A lease taken for a run there is no room for is given back.
    pub(crate) async fn drive_woken(self: &Arc<Self>, tenant: TenantId, woken: &Woken) {
        let id = woken.wait.run_id;
        let signal = match woken.epoch {
            Some(epoch) => Signal::Leased { epoch },
            None => Signal::Wake,
        };
        if !self.signal(tenant, id, signal) && woken.epoch.is_some() {
            self.give_back_lease(id).await;
        }
    }

    /// Gives back the lease of a run this engine took but has no room to
    /// drive, so that the run need not wait for the lease to expire.
    pub(crate) async fn give_back_lease(&self, id: RunId) {
        if let Err(err) = self.store.release_run(id, &self.owner).await {
            tracing::warn!(run = %id, error = %err, "lease not released; it expires on its own");
        }
    }

    /// When a lease taken or renewed at `now` runs out.
    pub(crate) fn lease_until(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> chrono::DateTime<chrono::Utc> {
        now + chrono::Duration::from_std(self.limits.lease_ttl).unwrap_or(chrono::Duration::MAX)
    }

    /// Renews the leases of the runs this engine drives; a driver whose
    /// lease was lost (this process stalled past its lease) stops.
    pub(crate) async fn renew_leases(&self) -> Result<()> {
        let runs: Vec<RunId> = self.active().runs.keys().copied().collect();
        if runs.is_empty() {
            return Ok(());
        }
        let until = self.lease_until(self.clock.now());
        for lost in self.store.renew_leases(&self.owner, &runs, until).await? {
            tracing::warn!(run = %lost, "lease lost; another engine drives the run now");
            if let Some(run) = self.active().get(&lost) {
                telemetry::lease_lost(&run.tenant);
                let _ = run.signals.send(Signal::Abandon);
            }
        }
        Ok(())
    }

    /// Keeps `workflow` for `tenant`'s runs, with the tenant's node metric
    /// keys, unless a copy is kept already.
    fn cache_workflow(&self, tenant: &TenantId, workflow: &ValidatedWorkflow) {
        self.with_cached_workflow(tenant, workflow, |_| ());
    }

    /// `cache_workflow`, then `read` of the copy kept (the one there
    /// already, if any). Starting a run caches its workflow every time:
    /// only a caller that wants the copy pays for cloning it.
    fn with_cached_workflow<R>(
        &self,
        tenant: &TenantId,
        workflow: &ValidatedWorkflow,
        read: impl FnOnce(&ValidatedWorkflow) -> R,
    ) -> R {
        let key = (
            tenant.clone(),
            workflow.definition.id.clone(),
            workflow.definition.version,
        );
        let mut cache = self
            .workflows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(cache.entry(key).or_insert_with(|| {
            let mut cached = workflow.clone();
            cached.node_timings = telemetry::node_duration_keys(&workflow.plan.types, tenant);
            cached
        }))
    }

    pub(crate) async fn load_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<ValidatedWorkflow> {
        if let Some(v) = version {
            let cached = self
                .workflows
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&(tenant.clone(), id.clone(), v))
                .cloned();
            if let Some(workflow) = cached {
                return Ok(workflow);
            }
        }
        let def = self
            .store
            .workflow(tenant, id, version)
            .await?
            .ok_or_else(|| Error::WorkflowNotFound {
                tenant: tenant.clone(),
                id: id.clone(),
                version,
            })?;
        let workflow = validate(&def, &self.registry)?;
        Ok(self.with_cached_workflow(tenant, &workflow, ValidatedWorkflow::clone))
    }

    async fn fire_due_timers(self: &Arc<Self>) -> Result<usize> {
        let mut fired = 0;
        loop {
            let due = self.store.due_waits(self.clock.now(), 256).await?;
            if due.is_empty() {
                return Ok(fired);
            }
            let before = fired;
            for (tenant, wait) in due {
                if let Some(wait) = self
                    .store
                    .take_wait(&tenant, &wait.key, Wakeup::Timer, None)
                    .await?
                {
                    fired += 1;
                    self.signal(tenant, wait.run_id, Signal::Wake);
                }
            }
            if fired == before {
                // Every due wait was taken by someone else meanwhile.
                return Ok(fired);
            }
        }
    }
}

/// The id of the run of `workflow` started with `key`: the same in every
/// process, so the store's uniqueness of run ids lets only one start it.
fn keyed_run_id(workflow: &PublishedWorkflow, key: &str) -> RunId {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    // Not the version: a key fires once for the workflow, whichever
    // version the process that gets there first has published.
    for part in [workflow.tenant.as_str(), workflow.id().as_str(), key] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    RunId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}
