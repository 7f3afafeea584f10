//! One node's execution within a run: attempts, timeout, retry, persistence.
//!
//! An execution calls `Node::execute` under its timeout (whose timer is set
//! only once the node waits). A node with side effects
//! (`NodeDescriptor::with_side_effects`) has its `running` record committed
//! before it executes; any other node that waits (network, timer) has it
//! committed while it waits. It retries retryable errors with backoff and
//! jitter (committing each failed attempt's error), and commits the result
//! (`succeeded`, `failed` with the `error` port output when routed, or
//! `waiting` with its `Wait`) before the driver acts on it. A step without
//! side effects that ends without waiting is not committed on its own: its
//! record waits as `Unsaved` and is committed with the run's next write.
//! Long strings of an output move to the content store here
//! (`externalize_items`, `EngineBuilder::content_threshold`), and a port
//! holding more than `max_port_items` fails the node (`overfull_port`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Inlet, Inner, Outlet};
use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::item::{Item, Ports, ERROR_PORT};
use crate::node::{Node, NodeContext, NodeError, NodeOutcome, Suspend};
use crate::run::{NodeExecution, NodeStatus, Wait};
use crate::store::{Epoch, StoreError};
use crate::telemetry;
use crate::workflow::RetryPolicy;

/// How a node's execution ended, after it was committed to the store.
pub(super) enum Finish {
    Succeeded(Ports),
    /// Failed; `routed` holds the `error` port output when an edge takes it.
    Failed {
        error: NodeError,
        routed: Option<Ports>,
    },
    Suspended,
    /// The node suspended on a key whose wake-up had come already: the
    /// store took it with the suspension, and the node is to be executed
    /// again at once from this record (waiting, with `resumed` set).
    Woken(Box<NodeExecution>),
    /// The node panicked; the panic's message.
    Panicked(String),
    /// The store refused a write: nothing after it happened.
    Store(StoreError),
    /// A node of a stream group failed and may pass on a later attempt:
    /// nothing was recorded, and the driver runs the group again from its
    /// producer after `pause`. The producer's outlet is held here so that
    /// its consumers do not see their stream break off before the driver
    /// stops them.
    Restart {
        error: NodeError,
        pause: Duration,
        _outlet: Option<Arc<Outlet>>,
    },
    /// The driver stopped it (its stream group restarts).
    Aborted,
}

/// Success records of a run's steps not committed yet, shared by its
/// driver and its node executions. A step without side effects that is
/// not part of a stream group (a transform, a check) is not committed on
/// its own: its record waits here and is committed with the run's next
/// write, whoever makes it (a later node's record or wait, the run's
/// settling, which takes them in the same change). Nothing of the run is
/// ever committed while an earlier step's record is only here, so the
/// store holds no step without the steps before it; a crash loses at most
/// these records, and their steps, having no side effects, run again.
#[derive(Default)]
pub(super) struct Unsaved {
    records: std::sync::Mutex<Vec<NodeExecution>>,
    /// Held while records are committed: a write that commits what is
    /// here first waits for records another took to be committed too.
    committing: tokio::sync::Mutex<()>,
}

impl Unsaved {
    pub(super) fn push(&self, record: NodeExecution) {
        self.lock().push(record);
    }

    pub(super) fn take(&self) -> Vec<NodeExecution> {
        std::mem::take(&mut *self.lock())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<NodeExecution>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commits the records waiting here, together (the store's group
    /// commit takes them as one write).
    pub(super) async fn commit(
        &self,
        inner: &Inner,
        tenant: &TenantId,
        epoch: Epoch,
    ) -> Result<(), StoreError> {
        let _committing = self.committing.lock().await;
        let records = self.take();
        if records.is_empty() {
            return Ok(());
        }
        let saves = records.iter().map(|record| {
            inner.durably("save node execution", move || {
                inner.store.save_node_execution(tenant, record, epoch)
            })
        });
        futures_util::future::try_join_all(saves).await.map(|_| ())
    }
}

/// A stream group member's ends: the outlet feeding its streaming edges,
/// the stream it reads, and how long to wait before it starts (a group
/// run again after a retryable failure).
pub(super) struct StreamEnds {
    pub(super) outlet: Option<Arc<Outlet>>,
    pub(super) inlet: Option<Arc<Inlet>>,
    pub(super) pause: Option<Duration>,
}

/// Everything one node execution needs besides its record (which names the
/// run, the node and its type, and holds the input and the attempt number),
/// owned so its future is `'static`.
pub(super) struct NodeTask {
    pub(super) inner: Arc<Inner>,
    pub(super) tenant: TenantId,
    /// The run's lease epoch, carried on every write (see `Epoch`).
    pub(super) epoch: Epoch,
    pub(super) workflow_id: WorkflowId,
    pub(super) workflow_version: u32,
    pub(super) node: Arc<dyn Node>,
    /// The workflow's node metric keys (see `ValidatedWorkflow`) and this
    /// node's index among them.
    pub(super) timings: Arc<[metrics::Key]>,
    pub(super) index: usize,
    pub(super) retry: RetryPolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) routes_errors: bool,
    /// The run's token; each attempt's token is a child of it (made when
    /// the node first asks for it), so a timeout cancels only its own
    /// attempt.
    pub(super) cancel: Arc<CancellationToken>,
    /// Set for a node of a stream group; boxed, as most nodes are not.
    pub(super) stream: Option<Box<StreamEnds>>,
    /// Its type declares side effects: its `running` record is committed
    /// before it executes.
    pub(super) side_effects: bool,
    /// An earlier execution of this attempt may have started: the node was
    /// found running when its run was loaded.
    pub(super) interrupted: bool,
    /// The run's steps not committed yet: committed before any write of
    /// this node, and where its own success goes when it may wait.
    pub(super) unsaved: Arc<Unsaved>,
}

// The futures below are written as `fn -> impl Future` around an `async
// move` block rather than as `async fn`: an `async fn` keeps its arguments
// twice in its state (rust-lang/rust#62958), and a node execution's future
// is allocated and moved for every node.
impl NodeTask {
    /// Executes the node; `record` is its record as it starts: `running`,
    /// with its input, its first attempt's number (1 for a fresh node, the
    /// stored one for a woken node, one more for an interrupted one) and,
    /// for a woken node, why it woke.
    pub(super) fn run(self, record: NodeExecution) -> impl Future<Output = Finish> + Send {
        let span = tracing::info_span!(
            "node",
            node = %record.node_id,
            node_type = %record.node_type,
            run = %record.run_id,
        );
        self.execute(record).instrument(span)
    }

    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn execute(self, mut record: NodeExecution) -> impl Future<Output = Finish> + Send {
        async move {
            if let Some(pause) = self.stream.as_ref().and_then(|s| s.pause) {
                Box::pin(tokio::time::sleep(pause)).await;
            }
            // A streaming consumer runs under its producer's permit: were
            // it to wait for one of its own, producers blocked on full
            // queues could hold every permit.
            let consumer = self.stream.as_ref().is_some_and(|s| s.inlet.is_some());
            let _permit = if consumer {
                None
            } else {
                // The semaphore lives as long as the engine and is never closed.
                let Ok(permit) = self.inner.node_permits.acquire().await else {
                    return Finish::Store(StoreError::Unavailable {
                        message: "engine is shutting down".into(),
                    });
                };
                Some(permit)
            };
            if record.started_at.is_none() {
                record.started_at = Some(self.inner.clock.now());
            }
            let max_attempts = self.retry.max_attempts.max(1);
            // A stream group's producer run again after a failure: a retry.
            let restarted = self.stream.as_ref().is_some_and(|s| s.pause.is_some());
            let mut tries = 0;
            let error = loop {
                tries += 1;
                // A retry is recorded running, with the failed attempt's
                // error, before it runs (after its back-off); a first
                // attempt is recorded running only if it waits (below).
                let retry = tries > 1 || restarted;
                // A node with side effects is recorded running before it
                // acts, so that a crash during the act is known when it
                // runs again.
                let saved = retry || self.side_effects;
                if saved {
                    if let Err(err) = self.save(&record).await {
                        return Finish::Store(err);
                    }
                }
                let began = tokio::time::Instant::now();
                // In a block of its own so that the context is not kept in
                // the future's state across the awaits below.
                let (outcome, outlet) = {
                    let ctx = NodeContext {
                        run_id: record.run_id,
                        node_id: record.node_id.clone(),
                        node_type: Arc::clone(&record.node_type),
                        tenant: self.tenant.clone(),
                        workflow_id: self.workflow_id.clone(),
                        workflow_version: self.workflow_version,
                        attempt: record.attempt,
                        may_be_repeat: retry || self.interrupted,
                        idempotency_key: std::sync::OnceLock::new(),
                        cancel: crate::node::AttemptCancel::new(Arc::clone(&self.cancel)),
                        // The span `run` entered: taken here rather than
                        // kept in the execution's future.
                        span: tracing::Span::current(),
                        resumed: record.resumed.clone(),
                        clock: Arc::clone(&self.inner.clock),
                        content_store: self.inner.contents.clone(),
                        outlet: match self.stream.as_ref().and_then(|s| s.outlet.as_ref()) {
                            Some(outlet) => crate::node::OutletCell::set(Arc::clone(outlet)),
                            None => crate::node::OutletCell::default(),
                        },
                        inlet: self.stream.as_ref().and_then(|s| s.inlet.clone()),
                    };
                    let input = record.input.unshared_joins();
                    match self.attempt_once(&ctx, input, &record, !saved, began).await {
                        Ok(outcome) => (outcome, ctx.outlet.used().cloned()),
                        Err(err) => return Finish::Store(err),
                    }
                };
                match self.timings.get(self.index) {
                    Some(key) => telemetry::node_finished(key, began.elapsed()),
                    None => telemetry::node_finished(
                        &telemetry::node_duration_key(&record.node_type, &self.tenant),
                        began.elapsed(),
                    ),
                }
                match outcome {
                    Ok(NodeOutcome::Done(ports)) => {
                        let ports = match &outlet {
                            // Boxed: only nodes that emitted or stream.
                            Some(outlet) => Box::pin(outlet.finish(ports)).await,
                            None => ports,
                        };
                        match self.overfull_port(&ports) {
                            None => return self.succeed(&mut record, ports).await,
                            Some(refused) => break refused,
                        }
                    }
                    Ok(NodeOutcome::Suspend(_))
                        if self.stream.is_some()
                            || outlet.as_ref().is_some_and(|o| o.emitted_any()) =>
                    {
                        break NodeError::fatal(if self.stream.is_some() {
                            "a node that streams cannot suspend: what it streamed is not recorded \
                             and would be lost while it waits"
                                .to_string()
                        } else {
                            "a node that emitted items cannot suspend in the same execution; \
                             emit them in the execution that finishes"
                                .to_string()
                        });
                    }
                    // Boxed: a suspension is rare, and its future would
                    // otherwise widen every node execution's.
                    Ok(NodeOutcome::Suspend(suspend)) => {
                        match Box::pin(self.suspend(&mut record, suspend)).await {
                            Ok(finish) => return finish,
                            Err(refused) => break refused,
                        }
                    }
                    // A stream group is tried again as a whole, by its driver.
                    Err(err)
                        if self.stream.is_some()
                            && err.is_retryable()
                            && record.attempt < max_attempts
                            && !self.cancel.is_cancelled() =>
                    {
                        tracing::debug!(attempt = record.attempt, error = %err, "streaming node attempt failed; its group runs again");
                        return Finish::Restart {
                            pause: self.retry.pause(
                                record.attempt,
                                fastrand::f64(),
                                err.retry_after(),
                            ),
                            error: err,
                            _outlet: outlet,
                        };
                    }
                    Err(err)
                        if self.stream.is_none()
                            && err.is_retryable()
                            && tries < max_attempts
                            && !self.cancel.is_cancelled() =>
                    {
                        tracing::debug!(attempt = record.attempt, error = %err, "node attempt failed; retrying");
                        let pause = self.retry.pause(tries, fastrand::f64(), err.retry_after());
                        record.error = Some(err);
                        record.attempt += 1;
                        // Boxed, as a retry is rare: see `attempt_once`.
                        Box::pin(tokio::time::sleep(pause)).await;
                    }
                    Err(err) => break err,
                }
            };
            self.fail(&mut record, error).await
        }
    }

    /// Drives one attempt. A node that finishes without waiting (a
    /// transform, a check) is committed once, when it ends (with the run's
    /// next write, when it has no side effects: see `Unsaved`): a `running`
    /// record before it would be one more commit in every step's path and
    /// would tell a recovering engine nothing it cannot derive, since the
    /// node is re-executed either way with the same idempotency key. A node
    /// that waits (on the network, a timer) has its `running` record
    /// committed while it goes on, so that a slow call shows in the run.
    /// The node is polled while the record is written, not paused: it may
    /// hold a store connection across its first wait, and the write may
    /// need that connection (`unsaved`: a retry's record was written
    /// before it ran). The attempt's timeout starts at `began`; its timer
    /// is set only once the node waits.
    #[allow(clippy::manual_async_fn)] // on purpose: see `impl NodeTask`
    fn attempt_once<'a>(
        &'a self,
        ctx: &'a NodeContext,
        input: Ports,
        record: &'a NodeExecution,
        unsaved: bool,
        began: tokio::time::Instant,
    ) -> impl Future<Output = Result<Result<NodeOutcome, NodeError>, StoreError>> + Send + 'a {
        let mut call = self.node.execute(ctx, input);
        async move {
            if let std::task::Poll::Ready(outcome) = futures_util::poll!(&mut call) {
                return Ok(outcome);
            }
            // Boxed: the timer and the write would otherwise widen the
            // future of every execution, also of those that end at the
            // first poll.
            Box::pin(async move {
                let limited = self.within_timeout(call, ctx, began);
                if unsaved {
                    let (outcome, saved) =
                        futures_util::future::join(limited, self.save(record)).await;
                    return saved.map(|()| outcome);
                }
                Ok(limited.await)
            })
            .await
        }
    }

    /// The rest of a node's call, cut off at the timeout.
    async fn within_timeout<F>(
        &self,
        call: F,
        ctx: &NodeContext,
        began: tokio::time::Instant,
    ) -> Result<NodeOutcome, NodeError>
    where
        F: Future<Output = Result<NodeOutcome, NodeError>>,
    {
        let Some(limit) = self.timeout else {
            return call.await;
        };
        match tokio::time::timeout_at(began + limit, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                ctx.cancel.cancel();
                Err(NodeError::retryable(format!(
                    "attempt timed out after {}",
                    human(limit)
                )))
            }
        }
    }

    async fn save(&self, record: &NodeExecution) -> Result<(), StoreError> {
        self.unsaved
            .commit(&self.inner, &self.tenant, self.epoch)
            .await?;
        self.inner
            .durably("save node execution", || {
                self.inner
                    .store
                    .save_node_execution(&self.tenant, record, self.epoch)
            })
            .await
    }

    /// The failure of an output with a port past the engine's
    /// `max_port_items`, if it has one: deterministic, so not retried.
    fn overfull_port(&self, ports: &Ports) -> Option<NodeError> {
        let limit = self.inner.limits.max_port_items;
        let (port, items) = ports.largest_port().filter(|&(_, n)| n > limit)?;
        Some(
            NodeError::fatal(format!(
                "emitted {items} items on port {port}, more than the {limit} one port holds in memory; \
                 raise EngineBuilder::max_port_items, or write them with ItemWriter and emit the reference"
            ))
            .with_details(serde_json::json!({ "port": port, "items": items, "limit": limit })),
        )
    }

    /// Commits the success; `record` is borrowed, not moved, so that the
    /// execution's future does not hold it twice.
    fn succeed<'a>(
        &'a self,
        record: &'a mut NodeExecution,
        ports: Ports,
    ) -> impl Future<Output = Finish> + Send + 'a {
        record.status = NodeStatus::Succeeded;
        record.resumed = None;
        record.ended_at = Some(self.inner.clock.now());
        async move {
            let ports = match self.inner.limits.content_threshold {
                // Boxed, and only for output that has large values: see
                // `attempt_once`.
                Some(threshold) if holds_large_ports(&ports, threshold) => {
                    match Box::pin(self.externalize(ports, threshold)).await {
                        Ok(ports) => ports,
                        Err(err) => return Finish::Store(err),
                    }
                }
                _ => ports,
            };
            record.output = Some(ports);
            if !self.side_effects && self.stream.is_none() {
                // Committed with the run's next write (see `Unsaved`).
                self.unsaved.push(record.clone());
            } else if let Err(err) = self.save(record).await {
                return Finish::Store(err);
            }
            Finish::Succeeded(record.output.take().unwrap_or_default())
        }
    }

    /// Moves every string in `ports` longer than `threshold` bytes to the
    /// content store, leaving a [`ContentRef`](crate::content::ContentRef) in its
    /// place, so that the record, and every node after, carries the
    /// reference.
    async fn externalize(&self, ports: Ports, threshold: usize) -> Result<Ports, StoreError> {
        let contents =
            crate::content::Contents::of(self.inner.contents.clone(), self.tenant.clone());
        let mut out = Ports::new();
        for (port, items) in ports.iter() {
            let mut items = items.to_vec();
            externalize_items(&contents, &mut items, threshold, &mut Vec::new()).await?;
            out.extend(port, items);
        }
        Ok(out)
    }

    /// Commits the suspension; `Err` is why the node fails instead (a
    /// suspension that names nothing to wait for, a key another node holds).
    async fn suspend(
        &self,
        record: &mut NodeExecution,
        suspend: Suspend,
    ) -> Result<Finish, NodeError> {
        let wait = wait_for(record.run_id, &record.node_id, suspend)?;
        let wakes = wait.until.is_some();
        record.status = NodeStatus::Waiting;
        record.wait = Some(Box::new(wait));
        record.resumed = None;
        #[cfg(feature = "testing")]
        self.inner.hooks.suspending(record).await;
        if let Err(err) = self
            .unsaved
            .commit(&self.inner, &self.tenant, self.epoch)
            .await
        {
            return Ok(Finish::Store(err));
        }
        let suspended: &NodeExecution = record;
        let result = self
            .inner
            .durably("suspend node", || {
                self.inner
                    .store
                    .suspend_node(&self.tenant, suspended, self.epoch)
            })
            .await;
        #[cfg(feature = "testing")]
        self.inner.hooks.suspended(record).await;
        match result {
            Ok(None) => {
                if wakes {
                    self.inner.timer_wake.notify_one();
                }
                Ok(Finish::Suspended)
            }
            Ok(Some(resumed)) => {
                record.wait = None;
                record.resumed = Some(Box::new(resumed));
                Ok(Finish::Woken(Box::new(record.clone())))
            }
            Err(StoreError::Conflict { message, .. }) => {
                record.wait = None;
                Err(NodeError::fatal(message))
            }
            Err(err) => Ok(Finish::Store(err)),
        }
    }

    fn fail<'a>(
        &'a self,
        record: &'a mut NodeExecution,
        error: NodeError,
    ) -> impl Future<Output = Finish> + Send + 'a {
        tracing::debug!(error = %error, "node failed");
        record.status = NodeStatus::Failed;
        record.resumed = None;
        record.ended_at = Some(self.inner.clock.now());
        record.output = self
            .routes_errors
            .then(|| error_output(&record.node_id, record.attempt, &error));
        record.error = Some(error.clone());
        async move {
            if let Err(err) = self.save(record).await {
                return Finish::Store(err);
            }
            Finish::Failed {
                error,
                routed: record.output.take(),
            }
        }
    }
}

/// What a failed node sends down its `error` edges: one item describing it.
fn error_output(node: &NodeId, attempt: u32, error: &NodeError) -> Ports {
    let mut item = Item::new();
    item.insert("node".into(), json!(node));
    item.insert("message".into(), json!(error.message()));
    item.insert("retryable".into(), json!(error.is_retryable()));
    item.insert("attempts".into(), json!(attempt));
    if !error.details().is_null() {
        item.insert("details".into(), error.details().clone());
    }
    Ports::new().with(ERROR_PORT, vec![item])
}

fn wait_for(run_id: RunId, node_id: &NodeId, suspend: Suspend) -> Result<Wait, NodeError> {
    let key = match (suspend.key, suspend.until) {
        (Some(key), _) if key.is_empty() => return Err(NodeError::fatal("suspended with an empty event key")),
        (Some(key), _) => key,
        (None, Some(_)) => format!("timer:{run_id}:{node_id}"),
        (None, None) => {
            return Err(NodeError::fatal(
                "suspended with neither an event key nor a time; use Suspend::until_event or Suspend::until_time",
            ))
        }
    };
    Ok(Wait {
        key,
        run_id,
        node_id: node_id.clone(),
        until: suspend.until,
        state: suspend.state,
    })
}

fn human(d: Duration) -> String {
    if d.as_millis() < 1_000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Whether some item of `ports` holds a string longer than `threshold` bytes.
fn holds_large_ports(ports: &Ports, threshold: usize) -> bool {
    ports
        .iter()
        .any(|(_, items)| items.iter().any(|item| holds_large(item, threshold)))
}

/// Whether `item` holds a string longer than `threshold` bytes.
pub(super) fn holds_large(item: &Item, threshold: usize) -> bool {
    item.values()
        .any(|v| !large_strings(v, threshold, "").is_empty())
}

/// Moves every string in `items` longer than `threshold` bytes to
/// `contents`, leaving a [`ContentRef`](crate::content::ContentRef) in its place.
/// What it stored is added to `stored`, also when it stops at an error,
/// so that a caller whose own write fails can delete it again.
pub(super) async fn externalize_items(
    contents: &crate::content::Contents,
    items: &mut [Item],
    threshold: usize,
    stored: &mut Vec<crate::content::ContentRef>,
) -> Result<(), StoreError> {
    for item in items.iter_mut() {
        for (key, value) in item.iter_mut() {
            for pointer in large_strings(value, threshold, "") {
                let Some(slot) = value.pointer_mut(&pointer) else {
                    continue;
                };
                let bytes = slot.as_str().unwrap_or_default().as_bytes();
                let content = contents
                    .put_bytes(bytes, Some("text/plain; charset=utf-8".into()))
                    .await
                    .map_err(|err| match err {
                        crate::content::ContentError::Store(err) => err,
                        other => StoreError::Unavailable {
                            message: other.to_string(),
                        },
                    })?;
                tracing::debug!(
                    key = %key,
                    at = %pointer,
                    size = content.size,
                    "value moved to the content store"
                );
                *slot = content.to_value();
                stored.push(content);
            }
        }
    }
    Ok(())
}

/// JSON pointers (relative to `value`, below `at`) of the strings in
/// `value` longer than `threshold` bytes.
fn large_strings(value: &serde_json::Value, threshold: usize, at: &str) -> Vec<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > threshold => vec![at.to_string()],
        Value::Array(values) => values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| large_strings(v, threshold, &format!("{at}/{i}")))
            .collect(),
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                let key = k.replace('~', "~0").replace('/', "~1");
                large_strings(v, threshold, &format!("{at}/{key}"))
            })
            .collect(),
        _ => Vec::new(),
    }
}
