//! Building an engine: its store, node types, clock, limits and defaults.

use super::*;

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
pub(super) struct Limits {
    pub(super) max_concurrent_nodes: usize,
    pub(super) max_concurrent_nodes_per_run: usize,
    pub(super) default_node_timeout: Option<Duration>,
    pub(super) default_retry: RetryPolicy,
    pub(super) timer_poll_interval: Duration,
    pub(super) store_retry_for: Duration,
    pub(super) recovery_interval: Duration,
    pub(super) lease_ttl: Duration,
    pub(super) held_wakeup_ttl: Duration,
    pub(super) max_active_runs: usize,
    pub(super) max_active_runs_per_tenant: Option<usize>,
    pub(super) content_threshold: Option<usize>,
    pub(super) max_port_items: usize,
    pub(super) edge_capacity: usize,
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
        let contents = store.content_store();
        if contents.is_none() && self.limits.content_threshold.is_some() {
            return Err(Error::NoContentStore);
        }
        let inner = Arc::new(Inner {
            store,
            contents,
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
}
