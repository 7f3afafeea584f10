//! The `Node` trait: what every step of a workflow implements.
//!
//! For node authors. The crate root holds what every node needs
//! ([`Node`], [`NodeContext`], [`NodeOutcome`], [`NodeError`],
//! [`NodeDescriptor`](crate::NodeDescriptor), [`Ports`]);
//! this module adds what some nodes need: waiting ([`Suspend`],
//! [`Wakeup`], [`Resumed`]), joins, port names, the palette's categories,
//! and the errors a registry gives.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
/// Stops what takes one ([`Engine::rerun_batch`](crate::Engine::rerun_batch),
/// a node's [`NodeContext::cancellation`]).
pub use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::item::{Item, Ports};

/// The JSON Schema derive config structs use; the same version the
/// registry reads, for hosts that would rather not name it themselves.
pub use schemars::{self, JsonSchema};

#[cfg(feature = "runtime")]
pub(crate) mod stream;

pub use crate::config_schema::{config_schema, declared_order, ORDER_KEYWORD};
pub use crate::descriptor::{NodeCategory, PortSpec};
pub use crate::item::{ERROR_PORT, MAIN_PORT};
pub use crate::registry::{read_config, ConfigError, RegistryError};

/// A step of a workflow.
///
/// One instance is built per node of a published workflow version, from the
/// node's config (see [`NodeRegistry::register`](crate::NodeRegistry::register)),
/// and is shared by every run of that version. Retries, timeouts, metrics and
/// persistence wrap `execute` from outside: a node only does its own job.
///
/// ```
/// use async_trait::async_trait;
/// use concertmaster_core::{Node, NodeContext, NodeError, NodeOutcome, Ports};
///
/// /// Upper-cases the `name` field of every item.
/// struct Shout;
///
/// #[async_trait]
/// impl Node for Shout {
///     async fn execute(&self, _ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
///         let mut items = input.take("main");
///         for item in &mut items {
///             let name = item.get("name").and_then(|v| v.as_str()).unwrap_or_default().to_uppercase();
///             item.insert("name".into(), name.into());
///         }
///         Ok(NodeOutcome::main(items))
///     }
/// }
/// ```
#[async_trait]
pub trait Node: Send + Sync + 'static {
    /// Runs the step on `input` (items per input port).
    ///
    /// Returns the items per output port, or a [`Suspend`] to wait for an
    /// event or a time. A node that suspended is executed again when it is
    /// woken, with [`NodeContext::resumed`] telling why.
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError>;

    /// The output ports of this instance, when they depend on its config
    /// (a switch with one port per case). `None` means the descriptor's.
    fn output_ports(&self) -> Option<Vec<String>> {
        None
    }

    /// When the node starts: once every incoming edge has resolved (the
    /// default), as soon as the first carries data, or, for a node that
    /// reads its input as a stream, as soon as its producer sends the
    /// first item.
    fn join(&self) -> Join {
        Join::All
    }
}

/// When a node with several incoming edges starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Join {
    /// Once every incoming edge has resolved; it runs if any carries data.
    #[default]
    All,
    /// As soon as the first incoming edge carries data, with that data; edges
    /// resolving later change nothing. Skipped if all resolve empty.
    First,
    /// While its producer still runs: the node reads its input one item at
    /// a time with [`NodeContext::next_item`] as the producer sends it with
    /// [`NodeContext::emit`], through a queue of
    /// [`EngineBuilder::edge_capacity`](crate::EngineBuilder::edge_capacity)
    /// items; a producer ahead of it waits, so neither side holds the
    /// whole list. The node must have exactly one incoming edge, not from
    /// an `error` port (checked on publish). It starts when the first item
    /// is sent, or when the producer finishes with the port taken; it is
    /// skipped when the producer leaves the port untaken.
    ///
    /// What is sent down a port whose every edge streams is not recorded,
    /// so a producer and the nodes it streams to are one unit: a retryable
    /// failure of any of them, within the failing node's retry policy,
    /// runs them all again from the producer (each sees its next attempt),
    /// an engine stopped while they ran runs them again from the producer,
    /// a re-run from one of them starts at the producer, and nodes after
    /// them start only once all of them ended. Such nodes cannot suspend.
    Stream,
}

const _: () = {
    // `Node` must stay object safe: the registry holds `Arc<dyn Node>`.
    fn _assert_object_safe(_: &dyn Node) {}
};

/// What a node's execution produced.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeOutcome {
    /// Finished: items per output port, after those the node
    /// [emitted](NodeContext::emit) there. Ports left out (and not emitted
    /// on) are not taken, and nodes reachable only through them are
    /// skipped.
    Done(Ports),
    /// Not finished: wait for an event or a time, holding no task meanwhile.
    Suspend(Suspend),
}

impl NodeOutcome {
    /// Finished with `items` on the `main` port.
    pub fn main(items: Vec<Item>) -> Self {
        Self::Done(Ports::main(items))
    }

    /// Finished with `items` on `port` only.
    pub fn port(port: impl AsRef<str>, items: Vec<Item>) -> Self {
        Self::Done(Ports::new().with(port, items))
    }

    /// Suspends the node.
    pub fn suspend(suspend: Suspend) -> Self {
        Self::Suspend(suspend)
    }
}

impl From<Ports> for NodeOutcome {
    fn from(ports: Ports) -> Self {
        Self::Done(ports)
    }
}

/// A request to wait, durably, before the node is executed again.
///
/// The run is stored as waiting and holds no task or memory; it continues
/// when [`Engine::resume`](crate::Engine) is called with the key, or when the
/// time comes, also in another process after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspend {
    /// The event key that resumes the node; unique per tenant while waiting.
    pub key: Option<String>,
    /// When the node wakes on its own (a timer, or an event's deadline).
    pub until: Option<DateTime<Utc>>,
    /// Data handed back to the node when it is executed again.
    pub state: Value,
}

impl Suspend {
    /// Waits for the event `key` (a form response, a review decision, ...).
    pub fn until_event(key: impl Into<String>) -> Self {
        Self {
            key: Some(key.into()),
            until: None,
            state: Value::Null,
        }
    }

    /// Waits until `at`.
    pub fn until_time(at: DateTime<Utc>) -> Self {
        Self {
            key: None,
            until: Some(at),
            state: Value::Null,
        }
    }

    /// Wakes at `at` if the event has not come by then.
    pub fn with_deadline(mut self, at: DateTime<Utc>) -> Self {
        self.until = Some(at);
        self
    }

    /// Keeps `state` (counts so far, ids sent, ...) for the next execution.
    pub fn with_state(mut self, state: Value) -> Self {
        self.state = state;
        self
    }
}

/// Why a suspended node was woken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Wakeup {
    /// The event it waited for came, with this payload.
    Event {
        /// The key the node waited on.
        key: String,
        /// What the caller of `resume` passed.
        payload: Value,
    },
    /// Its time came (a timer, or the deadline of an event that did not come).
    Timer,
}

/// Handed to a node executed again after a suspension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resumed {
    /// Why the node woke.
    pub wakeup: Wakeup,
    /// The state the node suspended with.
    pub state: Value,
}

impl Resumed {
    /// The event's payload; `null` when the node woke because its time came.
    pub fn wakeup_payload(&self) -> &Value {
        match &self.wakeup {
            Wakeup::Event { payload, .. } => payload,
            Wakeup::Timer => &Value::Null,
        }
    }

    /// Whether the node woke because its time came rather than an event.
    pub fn by_timer(&self) -> bool {
        self.wakeup == Wakeup::Timer
    }
}

/// Why a node failed, and whether trying again may help.
///
/// ```
/// use concertmaster_core::NodeError;
///
/// let err = NodeError::retryable("ERP answered 503").with_details(serde_json::json!({"status": 503}));
/// assert!(err.is_retryable());
/// assert!(!NodeError::fatal("config names no form").is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    message: String,
    retryable: bool,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    details: Value,
    /// The wait the remote side asked for before a retry, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_ms: Option<u64>,
}

impl NodeError {
    /// A failure that may pass on a later attempt (network, 5xx, 429, timeout).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            details: Value::Null,
            retry_after_ms: None,
        }
    }

    /// A failure that will fail again (bad input, a rejected record).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            details: Value::Null,
            retry_after_ms: None,
        }
    }

    /// Adds structured details (which item, the remote error code, ...).
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the engine retries it.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The structured details; `null` when none.
    pub fn details(&self) -> &Value {
        &self.details
    }

    /// Asks the engine to wait at least `wait` before the next attempt (a
    /// `Retry-After` the remote side sent, read with
    /// [`retry_after`](crate::connector::retry_after)); the retry policy's
    /// `maxBackoffMs` still bounds the pause.
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The wait asked for before the next attempt, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after_ms.map(Duration::from_millis)
    }
}

/// What a node knows about the execution it is part of.
#[derive(Clone)]
pub struct NodeContext {
    pub(crate) run_id: RunId,
    pub(crate) node_id: NodeId,
    pub(crate) node_type: Arc<str>,
    pub(crate) tenant: TenantId,
    pub(crate) workflow_id: WorkflowId,
    pub(crate) workflow_version: u32,
    pub(crate) attempt: u32,
    pub(crate) may_be_repeat: bool,
    /// Made on first use: most nodes never ask for it, and every node
    /// execution would otherwise pay for formatting it.
    pub(crate) idempotency_key: std::sync::OnceLock<Arc<str>>,
    pub(crate) cancel: AttemptCancel,
    pub(crate) span: tracing::Span,
    /// Boxed: set only for a woken node, and wide.
    pub(crate) resumed: Option<Box<Resumed>>,
    pub(crate) clock: Arc<dyn Clock>,
    /// Where [`contents`](Self::contents) reads and writes, if the
    /// engine's store keeps content.
    pub(crate) content_store: Option<Arc<dyn crate::store::ContentStore>>,
    /// Where [`emit`](Self::emit) sends items; made on first use unless
    /// the engine set it for a node with streaming edges.
    #[cfg(feature = "runtime")]
    pub(crate) outlet: OutletCell,
    /// The stream a [`Join::Stream`] node reads.
    #[cfg(feature = "runtime")]
    pub(crate) inlet: Option<Arc<stream::Inlet>>,
}

impl NodeContext {
    /// A context for calling a node directly, e.g. from a node's unit tests:
    /// attempt 1, a fresh cancellation token, the system clock, no content
    /// store ([`with_content_store`](Self::with_content_store) gives one).
    pub fn new(
        tenant: impl Into<TenantId>,
        workflow_id: impl Into<WorkflowId>,
        run_id: RunId,
        node_id: impl Into<NodeId>,
    ) -> Self {
        let node_id = node_id.into();
        Self {
            idempotency_key: std::sync::OnceLock::new(),
            run_id,
            node_id,
            node_type: Arc::from(""),
            tenant: tenant.into(),
            workflow_id: workflow_id.into(),
            workflow_version: 1,
            attempt: 1,
            may_be_repeat: false,
            cancel: AttemptCancel::new(Arc::new(CancellationToken::new())),
            span: tracing::Span::none(),
            resumed: None,
            clock: Arc::new(crate::clock::SystemClock),
            content_store: None,
            #[cfg(feature = "runtime")]
            outlet: OutletCell::default(),
            #[cfg(feature = "runtime")]
            inlet: None,
        }
    }

    /// Gives the node `items` to read with [`next_item`](Self::next_item),
    /// as a producer would stream them: for calling a [`Join::Stream`]
    /// node directly.
    #[cfg(feature = "runtime")]
    pub fn with_stream(mut self, items: Vec<Item>) -> Self {
        self.inlet = Some(Arc::new(stream::Inlet::of(items)));
        self
    }

    /// What the node [`emit`](Self::emit)ted so far and the engine keeps
    /// in its output, per port, taken out: for checking a node called
    /// directly (the engine adds these items before the ones the node
    /// returns).
    #[cfg(feature = "runtime")]
    pub fn take_emitted(&self) -> Ports {
        self.outlet.get().take_kept()
    }

    /// Uses `store` for [`contents`](Self::contents), for a node called
    /// directly that reads or writes content (an
    /// [`InMemoryStore`](crate::InMemoryStore) will do); without one, its
    /// calls answer [`ContentError::NotKept`](crate::content::ContentError::NotKept).
    pub fn with_content_store(mut self, store: Arc<dyn crate::store::ContentStore>) -> Self {
        self.content_store = Some(store);
        self
    }

    /// Sets the attempt number.
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// Marks the context as a re-execution after a suspension.
    pub fn with_resumed(mut self, resumed: Resumed) -> Self {
        self.resumed = Some(Box::new(resumed));
        self
    }

    /// Uses `clock` for [`now`](Self::now).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The run this execution belongs to.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// The node being executed.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// The node's registered type.
    pub fn node_type(&self) -> &str {
        &self.node_type
    }

    /// The tenant of the run.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The workflow of the run.
    pub fn workflow_id(&self) -> &WorkflowId {
        &self.workflow_id
    }

    /// The workflow version the run is pinned to.
    pub fn workflow_version(&self) -> u32 {
        self.workflow_version
    }

    /// 1 for the first attempt, 2 for the first retry, and so on. Waking
    /// from a suspension continues the same attempt; an attempt cut short by
    /// an engine restart is followed by a new one.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether an earlier execution of this step may have started: a retry,
    /// or an execution that a crash or a lost lease cut short (its effects
    /// may have happened, its result was never committed). A node with side
    /// effects checks what it already did before doing it again (an ERP
    /// export looks up the record it may have created). Exact for node
    /// types whose descriptor declares side effects
    /// ([`NodeDescriptor::with_side_effects`](crate::NodeDescriptor::with_side_effects)),
    /// whose start the engine commits before they run; for others a first
    /// attempt cut short before it waited is not known.
    pub fn may_be_repeat(&self) -> bool {
        self.may_be_repeat || self.attempt > 1
    }

    /// The same context, as for an execution that may repeat an earlier
    /// one ([`may_be_repeat`](Self::may_be_repeat)): for calling a node
    /// directly in its tests.
    pub fn repeating(mut self) -> Self {
        self.may_be_repeat = true;
        self
    }

    /// A key for side effects that must happen once: the same for every
    /// attempt, resumption and restart of this node in this run. Hand it to
    /// external systems as their idempotency key.
    pub fn idempotency_key(&self) -> &str {
        self.idempotency_key
            .get_or_init(|| idempotency_key(self.run_id, &self.node_id).into())
    }

    /// The idempotency key of the item at `index` of this node's input, for
    /// side effects made per item (one ERP record per item).
    pub fn item_key(&self, index: usize) -> String {
        format!("{}:{index}", self.idempotency_key())
    }

    /// Cancelled when the run is cancelled or the attempt timed out; long
    /// work should stop when it fires.
    pub fn cancellation(&self) -> &CancellationToken {
        self.cancel.token()
    }

    /// Whether the run was cancelled or the attempt timed out.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The tracing span of this node's execution.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Set when the node is executed again after a [`Suspend`].
    pub fn resumed(&self) -> Option<&Resumed> {
        self.resumed.as_deref()
    }

    /// The engine's current time (a manual clock in tests).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The run's tenant's content store: large values the items refer to
    /// by [`ContentRef`](crate::content::ContentRef), read and written a chunk at a
    /// time. Each of its calls answers
    /// [`ContentError::NotKept`](crate::content::ContentError::NotKept) when
    /// the engine's store keeps no content.
    #[cfg(feature = "runtime")]
    pub fn contents(&self) -> crate::content::Contents {
        crate::content::Contents::of(self.content_store.clone(), self.tenant.clone())
    }

    /// Sends `item` down `port` now, while the node goes on: to a node
    /// after it that streams ([`Join::Stream`]), which starts with the
    /// first item and reads it at once; waits while that node's queue is
    /// full, so a producer never runs further ahead than the queue. Down
    /// an edge that does not stream, the item is part of the node's output
    /// as if returned on `port`, before the items returned there. Items
    /// emitted by an attempt that fails are dropped with it.
    ///
    /// ```
    /// use async_trait::async_trait;
    /// use concertmaster_core::{Item, Node, NodeContext, NodeError, NodeOutcome, Ports};
    ///
    /// /// Emits one item per line of the `text` field, however many lines.
    /// struct Lines;
    ///
    /// #[async_trait]
    /// impl Node for Lines {
    ///     async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
    ///         for item in input.items("main") {
    ///             let text = item.get("text").and_then(|v| v.as_str()).unwrap_or_default();
    ///             for line in text.lines() {
    ///                 let mut out = Item::new();
    ///                 out.insert("line".into(), line.into());
    ///                 ctx.emit("main", out).await?;
    ///             }
    ///         }
    ///         // Taken, with what was emitted: nothing more to add.
    ///         Ok(NodeOutcome::main(Vec::new()))
    ///     }
    /// }
    /// ```
    #[cfg(feature = "runtime")]
    pub async fn emit(&self, port: impl AsRef<str>, item: Item) -> Result<(), NodeError> {
        if self.is_cancelled() {
            return Err(NodeError::retryable(format!(
                "node {} emitted after its run was cancelled or its attempt timed out",
                self.node_id
            )));
        }
        self.outlet.get().emit(port.as_ref(), item).await;
        Ok(())
    }

    /// The next item its producer sent, for a node whose join is
    /// [`Join::Stream`]; `None` once the producer finished and everything
    /// it sent was read. Fails when the producer stopped before it
    /// finished, and for a node that does not stream (its input is the
    /// `input` of [`Node::execute`]).
    ///
    /// ```
    /// use async_trait::async_trait;
    /// use concertmaster_core::{
    ///     Item, Node, NodeContext, NodeError, NodeOutcome, Ports, node::Join,
    /// };
    ///
    /// /// Counts the items streamed to it.
    /// struct Count;
    ///
    /// #[async_trait]
    /// impl Node for Count {
    ///     async fn execute(&self, ctx: &NodeContext, _input: Ports) -> Result<NodeOutcome, NodeError> {
    ///         let mut n = 0;
    ///         while let Some(_item) = ctx.next_item().await? {
    ///             n += 1;
    ///         }
    ///         let mut out = Item::new();
    ///         out.insert("count".into(), n.into());
    ///         Ok(NodeOutcome::main(vec![out]))
    ///     }
    ///
    ///     fn join(&self) -> Join {
    ///         Join::Stream
    ///     }
    /// }
    /// # let ctx = NodeContext::new("acme", "w", concertmaster_core::RunId::new(), "count")
    /// #     .with_stream(vec![Item::new(), Item::new()]);
    /// # let out = concertmaster_core::testing::block_on(Count.execute(&ctx, Ports::new())).unwrap();
    /// # assert_eq!(out, NodeOutcome::main(vec![serde_json::json!({"count": 2}).as_object().unwrap().clone()]));
    /// ```
    #[cfg(feature = "runtime")]
    pub async fn next_item(&self) -> Result<Option<Item>, NodeError> {
        match &self.inlet {
            Some(inlet) => inlet.next().await,
            None => Err(NodeError::fatal(format!(
                "node {} ({}) reads a stream, but its join is not Join::Stream; \
                 return Join::Stream from Node::join, or read the execute input",
                self.node_id, self.node_type
            ))),
        }
    }
}

/// A context's outlet, made on first use; a clone made before that shares
/// the one it makes then, so that what a clone emits is not lost.
#[cfg(feature = "runtime")]
#[derive(Default)]
pub(crate) struct OutletCell(std::sync::OnceLock<Arc<stream::Outlet>>);

#[cfg(feature = "runtime")]
impl OutletCell {
    pub(crate) fn set(outlet: Arc<stream::Outlet>) -> Self {
        Self(std::sync::OnceLock::from(outlet))
    }

    fn get(&self) -> &stream::Outlet {
        self.0.get_or_init(|| Arc::new(stream::Outlet::keeping()))
    }

    /// The outlet, if the node used it or the engine set it.
    pub(crate) fn used(&self) -> Option<&Arc<stream::Outlet>> {
        self.0.get()
    }
}

#[cfg(feature = "runtime")]
impl Clone for OutletCell {
    fn clone(&self) -> Self {
        self.get();
        Self(self.0.clone())
    }
}

/// An attempt's cancellation: a child of the run's token, so that a
/// timeout cancels its own attempt only. The child is made on first use:
/// most nodes never look at it, and every execution would pay for one.
pub(crate) struct AttemptCancel {
    run: Arc<CancellationToken>,
    own: std::sync::OnceLock<CancellationToken>,
}

impl AttemptCancel {
    pub(crate) fn new(run: Arc<CancellationToken>) -> Self {
        Self {
            run,
            own: std::sync::OnceLock::new(),
        }
    }

    fn token(&self) -> &CancellationToken {
        self.own.get_or_init(|| self.run.child_token())
    }

    fn is_cancelled(&self) -> bool {
        self.own
            .get()
            .map_or_else(|| self.run.is_cancelled(), CancellationToken::is_cancelled)
    }

    /// Cancels this attempt (it timed out), not the run.
    pub(crate) fn cancel(&self) {
        self.token().cancel();
    }
}

impl Clone for AttemptCancel {
    /// A clone shares the attempt's token, made now if it was not yet, so
    /// that a timeout reaches whatever holds the clone.
    fn clone(&self) -> Self {
        Self {
            run: Arc::clone(&self.run),
            own: std::sync::OnceLock::from(self.token().clone()),
        }
    }
}

impl fmt::Debug for NodeContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeContext")
            .field("tenant", &self.tenant)
            .field("workflow_id", &self.workflow_id)
            .field("workflow_version", &self.workflow_version)
            .field("run_id", &self.run_id)
            .field("node_id", &self.node_id)
            .field("attempt", &self.attempt)
            .field("resumed", &self.resumed.is_some())
            .finish_non_exhaustive()
    }
}

/// The idempotency key of `node` in `run`: stable because both ids are.
pub(crate) fn idempotency_key(run: RunId, node: &NodeId) -> String {
    format!("{run}:{node}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempts_token_follows_the_run_but_not_the_other_way() {
        let run = Arc::new(CancellationToken::new());
        let early = AttemptCancel::new(Arc::clone(&run));
        let taken = early.token().clone();
        let late = AttemptCancel::new(Arc::clone(&run));
        assert!(!early.is_cancelled() && !late.is_cancelled());
        early.cancel();
        assert!(
            taken.is_cancelled(),
            "a timeout reaches the token handed out"
        );
        assert!(!run.is_cancelled(), "a timeout does not cancel the run");
        assert!(!late.is_cancelled(), "nor another attempt");
        run.cancel();
        assert!(late.is_cancelled(), "cancelling the run reaches an attempt");
        assert!(
            late.token().is_cancelled(),
            "also through a token made after"
        );
    }

    #[test]
    fn a_clone_made_before_first_use_shares_the_attempts_token() {
        let run = Arc::new(CancellationToken::new());
        let attempt = AttemptCancel::new(Arc::clone(&run));
        let clone = attempt.clone();
        attempt.cancel();
        assert!(clone.is_cancelled() && clone.token().is_cancelled());
        assert!(!run.is_cancelled());
    }
}
