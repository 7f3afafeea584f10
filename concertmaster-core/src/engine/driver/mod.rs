//! A run's driver: ready-set scheduling of its nodes, from load to settle.
//!
//! One driver task per run in flight. It rebuilds the run's state from the
//! store (so a driver started after a restart continues where the last one
//! stopped), starts every node whose inputs are all resolved, and acts on a
//! node's result only after its execution committed it.
//!
//! # Loading
//!
//! The driver claims the run's lease (unless the start or the delivery that
//! woke it took it: `Signal::Leased`), then loads the run (unless it was
//! handed it with its lease: read before the claim, a run may have moved on
//! under another engine that drove and gave it up meanwhile) and its
//! `NodeExecution`s (none for a run just started or pending), and rebuilds
//! its state: finished nodes keep their outputs, interrupted nodes are
//! executed again, woken nodes continue. Every node whose incoming edges
//! are all resolved is ready: it runs if some edge carries data, and is
//! skipped (and its own edges resolved as dead) otherwise.
//!
//! # Executions and stream groups
//!
//! A node execution is a future the driver polls: no task per node, so a
//! step costs no hand-off between threads; the driver polls it once as it
//! launches it, and only one that waits joins the set of executions in
//! progress. A node whose join is `Join::Stream` is not scheduled by its
//! edges: the driver launches it (past the per-run limit, under its
//! producer's permit) when its producer sends the first item down the edge
//! (`Outlet` announces it), or when the producer ends with the port taken.
//! A producer and the nodes it streams to form a *stream group*
//! (`Plan::groups`): the driver resolves their edges only once all of them
//! ended; a retryable failure of one (`Finish::Restart`, nothing recorded)
//! stops the others in place (`abortable`, and a per-node generation that
//! makes late reports stale) and runs the group again from its producer as
//! the next attempt.
//!
//! # Settling
//!
//! When nothing can progress, the driver stores the run as `waiting`,
//! `succeeded` or `failed` and gives up its lease in the same change
//! (`RunStore::settle_run`, carrying the steps not yet committed), and
//! retires. It never stops polling its executions, also while it waits for
//! a store call of its own (`polling_nodes`): an execution may hold a
//! store connection across its awaits.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::future::AbortHandle;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::attempt::{Finish, NodeTask, StreamEnds, Unsaved};
use super::{Inlet, Inner, Outlet, Signal};
use crate::ids::{RunId, TenantId};
use crate::item::Ports;
use crate::node::stream::{EdgeSender, Flow};
use crate::node::NodeError;
use crate::run::{NodeExecution, NodeStatus, Run, RunStatus};
use crate::store::{Epoch, StoreError};
use crate::telemetry;
use crate::validate::ValidatedWorkflow;

mod load;
mod settle;
mod streams;

use load::{cancel_held_elsewhere, Known, Load};
use settle::release;
use streams::{next_announced, restart_unsettled_groups};

/// Drives run `id` until it settles, then again for every signal that
/// arrives before it retires.
pub(super) async fn drive(
    inner: Arc<Inner>,
    tenant: TenantId,
    id: RunId,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) {
    let span = tracing::info_span!("run", run = %id, tenant = %tenant);
    async move {
        let mut signal = signals.try_recv().ok();
        loop {
            let mut stored = None;
            let known = match signal.take() {
                Some(Signal::Start { run, leased }) => Known::Started(run, leased),
                Some(Signal::Leased { epoch }) => Known::Leased(epoch),
                other => {
                    signal = other;
                    Known::Nothing
                }
            };
            match RunDriver::load(&inner, &tenant, id, known).await {
                Ok(Load::Driver(mut driver)) => {
                    driver.drive(signal.take(), &mut signals).await;
                    // The driver is done with: its run goes to the waiters
                    // as it is, not copied.
                    let RunDriver { run, stored: was_stored, .. } = *driver;
                    stored = was_stored.then_some(run);
                }
                Ok(Load::Nothing) => {}
                Ok(Load::HeldElsewhere) => {
                    if let Some(Signal::Cancel { reason }) = signal.take() {
                        cancel_held_elsewhere(&inner, &tenant, id, &reason).await;
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, "run could not be loaded; it stays in flight until the next engine start");
                }
            }
            match inner.retire(id, &mut signals, stored) {
                Some(next) => signal = Some(next),
                None => return,
            }
        }
    }
    .instrument(span)
    .await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Some edge into it is unresolved.
    Unresolved,
    /// Queued to start.
    Ready,
    /// Its execution is in progress.
    Running,
    /// Suspended.
    Waiting,
    /// Succeeded, failed with a routed error, or skipped.
    Done,
}

struct RunDriver {
    inner: Arc<Inner>,
    tenant: TenantId,
    run: Run,
    /// The epoch of this engine's lease on the run, carried on every write.
    epoch: Epoch,
    workflow: ValidatedWorkflow,
    slots: Vec<Slot>,
    /// Stored records of nodes to execute again (interrupted or woken);
    /// boxed, as most nodes have none and a record is wide.
    records: Vec<Option<Box<NodeExecution>>>,
    /// Per node, edges into it not resolved yet.
    pending_in: Vec<usize>,
    /// Per node, resolved edges into it that carry data.
    live_in: Vec<usize>,
    /// Per node, whether its outgoing edges were resolved.
    resolved: Vec<bool>,
    /// Per node, what it emitted (cheap to clone: `Ports` share their items).
    outputs: Vec<Option<Ports>>,
    /// The run's trigger items, as a root node's input.
    trigger: Ports,
    ready: VecDeque<usize>,
    /// `resolve`'s work list, kept to reuse its allocation.
    resolving: Vec<usize>,
    /// The run's token, shared by its node executions without the lock
    /// that cloning a token takes.
    cancel: Arc<CancellationToken>,
    failure: Option<String>,
    /// Whether `run` is what the store holds: its settled or ended state
    /// was committed.
    stored: bool,
    /// Set when the store stayed unavailable past the retry period: the run
    /// is left in flight as stored, for this engine's next wake-up or the
    /// next engine's start, rather than failed for an outage.
    store_down: Option<StoreError>,
    /// Set when the store refused a write because another engine took the
    /// run over: the driver stops at once, writing and giving up nothing.
    fenced: bool,
    /// The state of the run's stream groups; `None` for a workflow without
    /// streaming edges, which pays nothing for them.
    streams: Option<Box<Streams>>,
    /// Nodes to start now, past the per-run limit: a streaming consumer
    /// whose producer is sending (the producer waits for it), a stream
    /// group's producer run again.
    urgent: Vec<usize>,
    /// Records of steps not committed yet, shared with the node
    /// executions (see `Unsaved`).
    unsaved: Arc<Unsaved>,
}

/// What a driver keeps of its run's stream groups.
struct Streams {
    /// Cloned into each producer's outlet; hears `(edge, generation)`
    /// when an edge's first item is sent.
    announce: mpsc::UnboundedSender<(usize, u32)>,
    /// Its receiving end, taken by `drive`.
    announced: Option<mpsc::UnboundedReceiver<(usize, u32)>>,
    /// Per consumer, its queue's receiving end, made with its producer's
    /// outlet and taken when it is launched.
    inlets: Vec<Option<Arc<Inlet>>>,
    /// Per node, how to stop its execution when its group runs again.
    aborts: Vec<Option<AbortHandle>>,
    /// Per node, bumped when its group runs again: what an execution of
    /// an earlier generation reports is ignored.
    generations: Vec<u32>,
    /// Per group, the attempt its nodes run as.
    attempts: Vec<u32>,
    /// Per group run again, the pause before its producer starts.
    pauses: Vec<Option<std::time::Duration>>,
}

impl RunDriver {
    async fn drive(
        &mut self,
        first: Option<Signal>,
        signals: &mut mpsc::UnboundedReceiver<Signal>,
    ) {
        // The node executions in progress, polled by this driver's task: no
        // task per node, so a step costs no cross-thread hand-off. Nodes that
        // burn CPU for long belong on `spawn_blocking`.
        let mut running = FuturesUnordered::new();
        match first {
            Some(Signal::Cancel { reason }) => {
                return self.stop(RunStatus::Cancelled, reason, &mut running).await
            }
            Some(Signal::Abandon) => return,
            _ => {}
        }
        if self.run.status != RunStatus::Running {
            self.run.status = RunStatus::Running;
            let epoch = self.epoch;
            if let Err(err) = self
                .inner
                .durably("update run", || {
                    self.inner.store.update_run(&self.run, epoch)
                })
                .await
            {
                if self.is_fenced(&err) {
                    return self.fenced_out();
                }
                tracing::error!(error = %err, "run could not be marked running; it stays in flight");
                return;
            }
        }
        telemetry::run_driven(&self.tenant, 1.0);
        let limit = self.inner.limits.max_concurrent_nodes_per_run;
        // Executions that ended, in the order they ended, for the driver to
        // act on one at a time.
        let mut finished = VecDeque::new();
        let mut announced = self.streams.as_mut().and_then(|s| s.announced.take());
        while self.failure.is_none() && self.store_down.is_none() && !self.fenced {
            while running.len() < limit || !self.urgent.is_empty() {
                let Some(i) = self.urgent.pop().or_else(|| self.ready.pop_front()) else {
                    break;
                };
                let mut execution = self.launch(i);
                // Polled once here: an execution that ends without waiting
                // (a transform, a check, on the in-memory store) never
                // enters the set, which would allocate a task for it.
                match futures_util::poll!(execution.as_mut()) {
                    Poll::Ready(done) => finished.push_back(done),
                    Poll::Pending => running.push(execution),
                }
            }
            if let Some((i, generation, finish)) = finished.pop_front() {
                polling_nodes(
                    self.finish(i, generation, finish),
                    &mut running,
                    &mut finished,
                )
                .await;
                continue;
            }
            if running.is_empty() {
                // Before settling as waiting: a wait may have been taken by
                // another engine, whose signal cannot reach this driver.
                if self.slots.contains(&Slot::Waiting) {
                    self.pick_up_woken().await;
                    if !self.ready.is_empty() {
                        continue;
                    }
                }
                break;
            }
            if !self.unsaved.is_empty() {
                // Nothing ended that the driver could act on at once: what
                // the steps so far did is committed before it waits, so
                // that a slow node holds back no earlier record.
                let committed = polling_nodes(
                    self.unsaved.commit(&self.inner, &self.tenant, self.epoch),
                    &mut running,
                    &mut finished,
                )
                .await;
                if let Err(err) = committed {
                    self.store_failed(None, err);
                }
                continue;
            }
            tokio::select! {
                Some(signal) = signals.recv() => match signal {
                    Signal::Cancel { reason } => {
                        telemetry::run_driven(&self.tenant, -1.0);
                        return self.stop(RunStatus::Cancelled, reason, &mut running).await;
                    }
                    Signal::Start { .. } | Signal::Wake | Signal::Leased { .. } => {
                        polling_nodes(self.pick_up_woken(), &mut running, &mut finished).await;
                    }
                    Signal::Abandon => {
                        telemetry::run_driven(&self.tenant, -1.0);
                        return;
                    }
                },
                Some(done) = running.next() => finished.push_back(done),
                Some((edge, generation)) = next_announced(&mut announced) => {
                    self.announced(edge, generation);
                }
            }
        }
        telemetry::run_driven(&self.tenant, -1.0);
        if self.fenced {
            return self.fenced_out();
        }
        if let Some(err) = self.store_down.take() {
            tracing::error!(error = %err, "the store stayed unavailable; the run stays in flight");
            return;
        }
        self.settle(&mut running).await;
    }

    /// Starts node `i`'s execution; the caller polls it.
    fn launch(&mut self, i: usize) -> NodeFuture {
        self.slots[i] = Slot::Running;
        // A record found running: an execution of it started before the
        // engine stopped (or before this driver took the run over).
        let interrupted = self.records[i]
            .as_ref()
            .is_some_and(|r| r.status == NodeStatus::Running);
        let (input, mut attempt, resumed, started_at, error) = match self.records[i].take() {
            // Waking from a suspension continues the attempt; re-executing a
            // node the engine stopped in the middle of is a new one.
            Some(record) if record.resumed.is_some() => (
                record.input,
                record.attempt.max(1),
                record.resumed,
                record.started_at,
                None,
            ),
            Some(record) => (
                record.input,
                record.attempt + 1,
                None,
                record.started_at,
                record.error,
            ),
            None => (self.input_of(i), 1, None, None, None),
        };
        let stream = self.workflow.plan.group_of[i].map(|group| {
            let (ends, at) = self.stream_ends(i, group, attempt);
            attempt = at;
            ends
        });
        // Only nodes of stream groups change generation.
        let generation = self.streams.as_ref().map_or(0, |s| s.generations[i]);
        let def = &self.workflow.definition;
        let spec = &def.nodes[i];
        let record = NodeExecution {
            run_id: self.run.id,
            node_id: spec.id.clone(),
            node_type: Arc::clone(&self.workflow.plan.types[i]),
            status: NodeStatus::Running,
            attempt,
            input,
            output: None,
            error,
            wait: None,
            resumed,
            started_at,
            ended_at: None,
        };
        let limits = &self.inner.limits;
        let task = NodeTask {
            inner: Arc::clone(&self.inner),
            tenant: self.tenant.clone(),
            epoch: self.epoch,
            workflow_id: def.id.clone(),
            workflow_version: def.version,
            node: Arc::clone(&self.workflow.nodes[i]),
            timings: Arc::clone(&self.workflow.node_timings),
            index: i,
            retry: spec
                .retry
                .clone()
                .unwrap_or_else(|| limits.default_retry.clone()),
            timeout: spec.timeout().or(limits.default_node_timeout),
            routes_errors: self.workflow.plan.routes_errors[i],
            cancel: Arc::clone(&self.cancel),
            stream,
            side_effects: self.workflow.plan.side_effects[i],
            interrupted,
            unsaved: Arc::clone(&self.unsaved),
        };
        // Combinators, not an async block: the block would keep `task` in
        // its state beside the execution's future, which is boxed and
        // moved for every node.
        let execution = AssertUnwindSafe(task.run(record))
            .catch_unwind()
            .map(move |caught| {
                let finish =
                    caught.unwrap_or_else(|panic| Finish::Panicked(panic_message(panic.as_ref())));
                (i, generation, finish)
            });
        match self.streams.as_mut() {
            Some(streams) if self.workflow.plan.group_of[i].is_some() => {
                // Stoppable: a group run again stops its nodes in place,
                // before any of them acts on the others' end.
                let (execution, abort) = futures_util::future::abortable(execution);
                streams.aborts[i] = Some(abort);
                Box::pin(
                    execution.map(move |done| done.unwrap_or((i, generation, Finish::Aborted))),
                )
            }
            _ => Box::pin(execution),
        }
    }

    /// The items arriving at node `i`: the trigger's for a root, otherwise
    /// what each live edge carries, in edge order, per target port.
    fn input_of(&self, i: usize) -> Ports {
        let plan = &self.workflow.plan;
        if plan.incoming[i].is_empty() {
            return self.trigger.clone();
        }
        let mut input = Ports::new();
        for &e in &plan.incoming[i] {
            let edge = &self.workflow.definition.edges[e];
            let Some(output) = &self.outputs[plan.ends[e].0] else {
                continue;
            };
            input.extend_shared(&edge.target_port, output, &edge.source_port);
        }
        input
    }

    async fn finish(&mut self, i: usize, generation: u32, finish: Finish) {
        if let Some(group) = self.workflow.plan.group_of[i] {
            return self.finish_streaming(i, group, generation, finish).await;
        }
        self.finish_node(i, finish).await;
    }

    /// Acts on the end of node `i`'s execution.
    async fn finish_node(&mut self, i: usize, finish: Finish) {
        match finish {
            Finish::Succeeded(ports)
            | Finish::Failed {
                routed: Some(ports),
                ..
            } => {
                self.outputs[i] = Some(ports);
                self.slots[i] = Slot::Done;
                self.resolve(i).await;
            }
            Finish::Failed {
                error,
                routed: None,
            } => {
                self.slots[i] = Slot::Done;
                self.failure = Some(format!("node {} failed: {error}", self.node_id(Some(i))));
            }
            Finish::Suspended => self.slots[i] = Slot::Waiting,
            Finish::Woken(record) => {
                self.slots[i] = Slot::Ready;
                self.records[i] = Some(record);
                self.ready.push_back(i);
            }
            Finish::Panicked(message) => {
                self.slots[i] = Slot::Done;
                self.failure = Some(format!(
                    "node {} panicked: {message}",
                    self.node_id(Some(i))
                ));
            }
            Finish::Store(err) => self.store_failed(Some(i), err),
            // Only nodes of stream groups restart or are stopped.
            Finish::Restart { .. } | Finish::Aborted => {}
        }
    }

    /// Resolves the edges leaving node `i` (which is done), then those of
    /// every node skipped as a result. A target whose edges are all resolved
    /// starts if any of them carries data, and is skipped otherwise.
    async fn resolve(&mut self, i: usize) {
        let plan = Arc::clone(&self.workflow.plan);
        // Reused between calls: resolving is done once per node.
        let mut stack = std::mem::take(&mut self.resolving);
        stack.push(i);
        while let Some(n) = stack.pop() {
            if std::mem::replace(&mut self.resolved[n], true) {
                continue;
            }
            for &e in &plan.outgoing[n] {
                let target = plan.ends[e].1;
                let port = &self.workflow.definition.edges[e].source_port;
                let live = self.outputs[n].as_ref().is_some_and(|o| o.is_taken(port));
                if live {
                    self.live_in[target] += 1;
                }
                self.pending_in[target] -= 1;
                if live
                    && self.slots[target] == Slot::Unresolved
                    && self.workflow.nodes[target].join() == crate::node::Join::First
                {
                    self.slots[target] = Slot::Ready;
                    self.ready.push_back(target);
                    continue;
                }
                if self.pending_in[target] == 0 && self.slots[target] == Slot::Unresolved {
                    if self.live_in[target] > 0 {
                        self.slots[target] = Slot::Ready;
                        self.ready.push_back(target);
                    } else {
                        self.skip(target).await;
                        stack.push(target);
                    }
                }
            }
        }
        self.resolving = stack;
    }

    async fn skip(&mut self, i: usize) {
        self.slots[i] = Slot::Done;
        let now = self.inner.clock.now();
        let record = NodeExecution {
            run_id: self.run.id,
            node_id: self.workflow.definition.nodes[i].id.clone(),
            node_type: Arc::clone(&self.workflow.plan.types[i]),
            status: NodeStatus::Skipped,
            attempt: 0,
            input: Ports::new(),
            output: None,
            error: None,
            wait: None,
            resumed: None,
            started_at: None,
            ended_at: Some(now),
        };
        // Committed with the run's next write, as a step's success is.
        self.unsaved.push(record);
    }

    /// A store call failed even after retries: an outage leaves the run in
    /// flight; a refusal (a conflict, a corrupt record) fails it.
    fn store_failed(&mut self, node: Option<usize>, err: StoreError) {
        if self.is_fenced(&err) {
            self.fenced = true;
        } else if err.is_retryable() {
            self.store_down = Some(err);
        } else {
            self.failure = Some(format!(
                "node {}: the store refused a write: {err}",
                self.node_id(node)
            ));
        }
    }

    /// After a wake-up: nodes whose wait was taken are executed again.
    async fn pick_up_woken(&mut self) {
        let (tenant, id) = (&self.tenant, self.run.id);
        let read = self
            .inner
            .durably("read node executions", || {
                self.inner.store.node_executions(tenant, id)
            })
            .await;
        let records = match read {
            Ok(records) => records,
            Err(err) => {
                self.store_failed(None, err);
                return;
            }
        };
        for record in records {
            let Some(&i) = self.workflow.plan.index.get(&record.node_id) else {
                continue;
            };
            if self.slots[i] == Slot::Waiting
                && record.status == NodeStatus::Waiting
                && record.resumed.is_some()
            {
                self.slots[i] = Slot::Ready;
                self.records[i] = Some(Box::new(record));
                self.ready.push_back(i);
            }
        }
    }
}

/// A node execution: the node's index, the generation it was launched in
/// (see `Streams`), and how it ended.
type NodeFuture = Pin<Box<dyn Future<Output = (usize, u32, Finish)> + Send>>;

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What follows a run's end being stored: its metrics, and the wake-up of
/// the parent node waiting for it, if it is a child run.
fn run_ended(inner: &Arc<Inner>, run: &Run) {
    telemetry::run_ended(
        &run.workflow_id,
        &run.tenant,
        run.status,
        run_age(inner, run),
    );
    inner.wake_parent(run);
}

fn run_age(inner: &Inner, run: &Run) -> std::time::Duration {
    let end = run.ended_at.unwrap_or_else(|| inner.clock.now());
    (end - run.created_at).to_std().unwrap_or_default()
}

/// Awaits `work`, one of the driver's own store calls, while it goes on
/// polling the node executions in `running`; those that end wait in
/// `finished`. An execution may hold a store connection across its own
/// awaits; left unpolled while the driver waits for a connection, it would
/// hold it for good on a store of one connection (SQLite).
async fn polling_nodes<T>(
    work: impl Future<Output = T>,
    running: &mut FuturesUnordered<NodeFuture>,
    finished: &mut VecDeque<(usize, u32, Finish)>,
) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(done) = running.next(), if !running.is_empty() => finished.push_back(done),
        }
    }
}
