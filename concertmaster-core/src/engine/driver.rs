//! A run's driver: ready-set scheduling of its nodes, from load to settle.
//!
//! One driver task per run in flight. It rebuilds the run's state from the
//! store (so a driver started after a restart continues where the last one
//! stopped), starts every node whose inputs are all resolved, and acts on a
//! node's result only after its execution committed it.

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
use super::stream::{EdgeSender, Flow};
use super::{Inlet, Inner, Outlet, Signal};
use crate::ids::{RunId, TenantId};
use crate::item::Ports;
use crate::node::NodeError;
use crate::run::{NodeExecution, NodeStatus, Run, RunStatus};
use crate::store::{Epoch, StoreError};
use crate::telemetry;
use crate::validate::ValidatedWorkflow;

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

/// What a driver knows of its run before loading it.
enum Known {
    /// Nothing: the lease is claimed, then the run read.
    Nothing,
    /// The copy this engine stored when it started the run, and whether it
    /// took the run's lease in the same change.
    Started(Box<Run>, bool),
    /// This engine took the run's lease at this epoch with the delivery
    /// that ended its wait ([`crate::store::WaitStore::deliver`]).
    Leased(Epoch),
}

/// What loading a run found.
enum Load {
    /// The run, claimed by this engine, ready to drive.
    Driver(Box<RunDriver>),
    /// Nothing to drive: no such run, or it has ended.
    Nothing,
    /// Another engine holds the run's lease and drives it.
    HeldElsewhere,
}

/// Cancels a run another engine drives: the run is ended in the store, and
/// that engine's next write into it is refused, which stops it there.
async fn cancel_held_elsewhere(inner: &Arc<Inner>, tenant: &TenantId, id: RunId, reason: &str) {
    let at = inner.clock.now();
    let ended = inner
        .durably("end run", || {
            inner
                .store
                .end_run(tenant, id, RunStatus::Cancelled, reason, at, None)
        })
        .await;
    match ended {
        Ok(Some(run)) => run_ended(inner, &run),
        Ok(None) => {}
        Err(err) => tracing::error!(error = %err, "run could not be cancelled"),
    }
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
    /// Loads run `id` from the store, or from what the driver `known`s.
    async fn load(
        inner: &Arc<Inner>,
        tenant: &TenantId,
        id: RunId,
        known: Known,
    ) -> Result<Load, StoreError> {
        // A run this engine has just started with its lease is as stored,
        // at its first epoch. Any other is read only once its lease is
        // claimed: read before, it may have moved on under another engine
        // by the time the claim succeeds (that engine drove it and gave it
        // up meanwhile), and driving a stale copy would do its work again.
        let (run, epoch, leased) = match known {
            Known::Started(run, true) => (*run, Epoch::FIRST, true),
            known => {
                let claimed = match known {
                    Known::Leased(epoch) => Some(epoch),
                    _ => {
                        let now = inner.clock.now();
                        let until = inner.lease_until(now);
                        inner
                            .durably("claim run", || {
                                inner.store.claim_run(tenant, id, &inner.owner, until, now)
                            })
                            .await?
                    }
                };
                let read = inner
                    .durably("read run", || inner.store.run(tenant, id))
                    .await?;
                match (claimed, read) {
                    (_, None) => return Ok(Load::Nothing),
                    (Some(_), Some(run)) if run.status.is_terminal() => {
                        release(inner, id).await;
                        return Ok(Load::Nothing);
                    }
                    (Some(epoch), Some(run)) => (run, epoch, false),
                    (None, Some(run)) if run.status.is_terminal() => return Ok(Load::Nothing),
                    (None, Some(_)) => return Ok(Load::HeldElsewhere),
                }
            }
        };
        if run.status.is_terminal() {
            return Ok(Load::Nothing);
        }
        let workflow = match inner
            .load_workflow(tenant, &run.workflow_id, Some(run.workflow_version))
            .await
        {
            Ok(workflow) => workflow,
            // A store outage is not the workflow's fault: leave the run in flight.
            Err(crate::Error::Store(err)) => return Err(err),
            Err(err) => {
                let reason = format!(
                    "workflow {} version {} cannot be run: {err}",
                    run.workflow_id, run.workflow_version
                );
                tracing::error!(%reason, "run failed before it started");
                let at = inner.clock.now();
                let ended = inner
                    .durably("end run", || {
                        inner
                            .store
                            .end_run(tenant, id, RunStatus::Failed, &reason, at, Some(epoch))
                    })
                    .await?;
                if let Some(run) = ended {
                    run_ended(inner, &run);
                }
                return Ok(Load::Nothing);
            }
        };
        let n = workflow.definition.nodes.len();
        let plan = Arc::clone(&workflow.plan);
        let trigger = Ports::main(run.trigger.clone());
        let mut driver = Self {
            inner: Arc::clone(inner),
            tenant: tenant.clone(),
            run,
            epoch,
            slots: vec![Slot::Unresolved; n],
            records: (0..n).map(|_| None).collect(),
            pending_in: plan.incoming.iter().map(Vec::len).collect(),
            live_in: vec![0; n],
            resolved: vec![false; n],
            outputs: vec![None; n],
            trigger,
            ready: VecDeque::new(),
            resolving: Vec::new(),
            cancel: Arc::new(CancellationToken::new()),
            failure: None,
            stored: false,
            store_down: None,
            fenced: false,
            streams: (!plan.groups.is_empty()).then(|| {
                let (announce, announced) = mpsc::unbounded_channel();
                Box::new(Streams {
                    announce,
                    announced: Some(announced),
                    inlets: vec![None; n],
                    aborts: vec![None; n],
                    generations: vec![0; n],
                    attempts: vec![1; plan.groups.len()],
                    pauses: vec![None; plan.groups.len()],
                })
            }),
            urgent: Vec::new(),
            unsaved: Arc::new(Unsaved::default()),
            workflow,
        };

        // Nodes execute only once a driver has marked the run running; a
        // pending run holds at most the skips of unchosen roots, which
        // loading derives again. A run started here with its lease has no
        // records yet.
        let mut records = if leased || driver.run.status == RunStatus::Pending {
            Vec::new()
        } else {
            inner
                .durably("read node executions", || {
                    inner.store.node_executions(tenant, id)
                })
                .await?
        };
        if !plan.groups.is_empty() {
            restart_unsettled_groups(&driver.workflow, &mut records);
        }
        for record in records {
            let Some(&i) = plan.index.get(&record.node_id) else {
                continue;
            };
            match record.status {
                NodeStatus::Succeeded | NodeStatus::Skipped => {
                    driver.outputs[i] = record.output;
                    driver.slots[i] = Slot::Done;
                }
                NodeStatus::Failed if record.output.is_some() => {
                    driver.outputs[i] = record.output;
                    driver.slots[i] = Slot::Done;
                }
                NodeStatus::Failed => {
                    // The engine stopped between the node's failure and the run's.
                    let message = record
                        .error
                        .as_ref()
                        .map(|e| e.message().to_string())
                        .unwrap_or_default();
                    driver.failure = Some(format!("node {} failed: {message}", record.node_id));
                    driver.slots[i] = Slot::Done;
                }
                NodeStatus::Waiting if record.resumed.is_none() => driver.slots[i] = Slot::Waiting,
                NodeStatus::Waiting | NodeStatus::Running | NodeStatus::Cancelled => {
                    driver.slots[i] = Slot::Ready;
                    driver.records[i] = Some(Box::new(record));
                    driver.ready.push_back(i);
                }
            }
        }
        for &i in &plan.topo {
            if driver.slots[i] == Slot::Done {
                driver.resolve(i).await;
            }
        }
        let roots: Vec<usize> = plan.roots().collect();
        for root in roots {
            if driver.slots[root] != Slot::Unresolved {
                continue;
            }
            let chosen = match &driver.run.trigger_node {
                Some(node) => *node == driver.workflow.definition.nodes[root].id,
                None => true,
            };
            if chosen {
                driver.slots[root] = Slot::Ready;
                driver.ready.push_back(root);
            } else {
                driver.skip(root).await;
                driver.resolve(root).await;
            }
        }
        Ok(Load::Driver(Box::new(driver)))
    }

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

    /// The stream ends of node `i` of stream group `group`, launched as
    /// `attempt`, and the attempt it runs as: a producer makes its edges'
    /// queues and sets its group's attempt, a consumer takes its queue and
    /// runs as its group's attempt.
    fn stream_ends(&mut self, i: usize, group: usize, attempt: u32) -> (Box<StreamEnds>, u32) {
        let plan = &self.workflow.plan;
        let def = &self.workflow.definition;
        let capacity = self.inner.limits.edge_capacity;
        let Some(streams) = self.streams.as_mut() else {
            unreachable!("a workflow with stream groups has stream state");
        };
        let head = plan.groups[group][0] == i;
        let attempt = if head {
            streams.attempts[group] = attempt;
            attempt
        } else {
            streams.attempts[group]
        };
        let inlet = plan.stream_in(i).map(|e| {
            streams.inlets[i].take().unwrap_or_else(|| {
                // Not made by a producer in this generation: a stream
                // that broke off before it started.
                let (_, rx) = mpsc::channel::<Flow>(1);
                Arc::new(Inlet::new(rx, def.edges[e].source.clone()))
            })
        });
        let mut ports: Vec<(Arc<str>, bool, Vec<EdgeSender>)> = Vec::new();
        for &e in &plan.outgoing[i] {
            if !plan.streams[e] {
                continue;
            }
            let edge = &def.edges[e];
            let (tx, rx) = mpsc::channel(capacity);
            let target = plan.ends[e].1;
            streams.inlets[target] = Some(Arc::new(Inlet::new(rx, def.nodes[i].id.clone())));
            let sender = EdgeSender::new(e, tx);
            match ports.iter_mut().find(|(p, ..)| **p == *edge.source_port) {
                Some((_, _, senders)) => senders.push(sender),
                None => {
                    let only = plan.outgoing[i]
                        .iter()
                        .all(|&o| plan.streams[o] || def.edges[o].source_port != edge.source_port);
                    ports.push((Arc::from(edge.source_port.as_str()), only, vec![sender]));
                }
            }
        }
        let outlet = (!ports.is_empty()).then(|| {
            Arc::new(Outlet::streaming(
                ports,
                streams.announce.clone(),
                streams.generations[i],
            ))
        });
        let pause = if head {
            streams.pauses[group].take()
        } else {
            None
        };
        (
            Box::new(StreamEnds {
                outlet,
                inlet,
                pause,
            }),
            attempt,
        )
    }

    /// The first item went down streaming edge `edge` of the producer's
    /// `generation`: its consumer starts now, if that is still current.
    fn announced(&mut self, edge: usize, generation: u32) {
        let (source, target) = self.workflow.plan.ends[edge];
        let current = self
            .streams
            .as_ref()
            .is_some_and(|s| s.generations[source] == generation);
        if current && self.slots[target] == Slot::Unresolved {
            self.slots[target] = Slot::Ready;
            self.urgent.push(target);
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

    /// Acts on the end of node `i` of stream group `group`: what its
    /// edges carry is resolved only once the whole group ended, as any of
    /// it failing may run the group again.
    async fn finish_streaming(&mut self, i: usize, group: usize, generation: u32, finish: Finish) {
        let current = self
            .streams
            .as_ref()
            .is_some_and(|s| s.generations[i] == generation);
        if !current {
            return;
        }
        if let Some(streams) = self.streams.as_mut() {
            streams.aborts[i] = None;
        }
        match finish {
            Finish::Succeeded(ports)
            | Finish::Failed {
                routed: Some(ports),
                ..
            } => {
                let plan = Arc::clone(&self.workflow.plan);
                for &e in &plan.outgoing[i] {
                    let target = plan.ends[e].1;
                    let port = &self.workflow.definition.edges[e].source_port;
                    // Its end waits in its queue: a consumer whose first
                    // item was not announced yet starts now.
                    if plan.streams[e]
                        && self.slots[target] == Slot::Unresolved
                        && ports.is_taken(port)
                    {
                        self.slots[target] = Slot::Ready;
                        self.urgent.push(target);
                    }
                }
                self.outputs[i] = Some(ports);
                self.slots[i] = Slot::Done;
                let busy = plan.groups[group]
                    .iter()
                    .any(|&m| matches!(self.slots[m], Slot::Ready | Slot::Running));
                if !busy {
                    for &m in &plan.groups[group] {
                        if self.slots[m] == Slot::Done {
                            self.resolve(m).await;
                        }
                    }
                }
            }
            Finish::Restart { error, pause, .. } => self.restart_group(group, error, pause),
            Finish::Aborted => {}
            other => self.finish_node(i, other).await,
        }
    }

    /// Runs stream group `group` again from its producer, as its next
    /// attempt, after `pause`: its nodes still going are stopped where
    /// they are, and what they did is forgotten.
    fn restart_group(&mut self, group: usize, error: NodeError, pause: std::time::Duration) {
        let plan = Arc::clone(&self.workflow.plan);
        let head = plan.groups[group][0];
        let Some(streams) = self.streams.as_mut() else {
            return;
        };
        for &m in &plan.groups[group] {
            if let Some(abort) = streams.aborts[m].take() {
                abort.abort();
            }
            streams.generations[m] = streams.generations[m].wrapping_add(1);
            streams.inlets[m] = None;
            self.slots[m] = Slot::Unresolved;
            self.outputs[m] = None;
        }
        self.ready.retain(|n| plan.group_of[*n] != Some(group));
        self.urgent.retain(|n| plan.group_of[*n] != Some(group));
        streams.pauses[group] = Some(pause);
        let attempt = streams.attempts[group];
        self.records[head] = Some(Box::new(NodeExecution {
            run_id: self.run.id,
            node_id: self.workflow.definition.nodes[head].id.clone(),
            node_type: Arc::clone(&plan.types[head]),
            status: NodeStatus::Running,
            attempt,
            input: self.input_of(head),
            output: None,
            error: Some(error),
            wait: None,
            resumed: None,
            started_at: None,
            ended_at: None,
        }));
        self.slots[head] = Slot::Ready;
        self.urgent.push(head);
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

    /// Stores the run's state after its driver ran out of nodes to start,
    /// or ends it as failed; `running` holds the executions still going.
    async fn settle(&mut self, running: &mut FuturesUnordered<NodeFuture>) {
        if let Some(reason) = self.failure.take() {
            return self.stop(RunStatus::Failed, reason, running).await;
        }
        let waiting = self.slots.contains(&Slot::Waiting);
        self.run.status = if waiting {
            RunStatus::Waiting
        } else {
            RunStatus::Succeeded
        };
        if !waiting {
            self.run.ended_at = Some(self.inner.clock.now());
        }
        // The steps not committed yet, the run's state and the end of this
        // engine's lease, in one change.
        let (owner, epoch) = (&self.inner.owner, self.epoch);
        let steps = self.unsaved.take();
        if let Err(err) = self
            .inner
            .durably("settle run", || {
                self.inner.store.settle_run(&self.run, owner, epoch, &steps)
            })
            .await
        {
            if self.is_fenced(&err) {
                return self.fenced_out();
            }
            tracing::error!(error = %err, "run state could not be stored; it stays in flight");
            return;
        }
        self.stored = true;
        if !waiting {
            run_ended(&self.inner, &self.run);
        }
        tracing::debug!(status = self.run.status.as_str(), "run settled");
    }

    /// Ends the run as failed or cancelled: its executing nodes are stopped
    /// first, so nothing they do lands after the run ended.
    async fn stop(
        &mut self,
        status: RunStatus,
        reason: String,
        running: &mut FuturesUnordered<NodeFuture>,
    ) {
        self.cancel.cancel();
        // Dropping an execution stops it where it is; nothing it would have
        // written lands after the run ends.
        running.clear();
        let epoch = self.epoch;
        // What the steps before did stays recorded in the ended run.
        let committed = self.unsaved.commit(&self.inner, &self.tenant, epoch).await;
        if let Err(err) = committed {
            if self.is_fenced(&err) {
                return self.fenced_out();
            }
            tracing::warn!(error = %err, "records of steps before the run's end could not be stored");
        }
        let (tenant, id, at) = (&self.tenant, self.run.id, self.inner.clock.now());
        let ended = self
            .inner
            .durably("end run", || {
                self.inner
                    .store
                    .end_run(tenant, id, status, &reason, at, Some(epoch))
            })
            .await;
        match ended {
            Err(err) if self.is_fenced(&err) => return self.fenced_out(),
            Ok(Some(run)) => {
                tracing::info!(status = run.status.as_str(), %reason, "run ended");
                run_ended(&self.inner, &run);
                self.run = run;
                self.stored = true;
            }
            Ok(None) => {}
            Err(err) => tracing::error!(error = %err, "run could not be ended; it stays in flight"),
        }
        release(&self.inner, self.run.id).await;
    }

    /// Whether `err` says another engine took the run over, counting it.
    fn is_fenced(&self, err: &StoreError) -> bool {
        let fenced = err.kind() == crate::store::StoreErrorKind::Fenced;
        if fenced {
            telemetry::write_fenced(&self.tenant);
        }
        fenced
    }

    /// Stops driving the run after a write was fenced: another engine
    /// drives it now, so this one writes nothing more and gives up
    /// nothing (the lease is not its own any more).
    fn fenced_out(&mut self) {
        let epoch = self.epoch;
        tracing::warn!(%epoch, "lease lost to another engine (a write was fenced); no longer driving the run");
        self.cancel.cancel();
    }

    fn node_id(&self, i: Option<usize>) -> String {
        i.map(|i| self.workflow.definition.nodes[i].id.to_string())
            .unwrap_or_else(|| "?".into())
    }
}

/// Gives up this engine's lease on run `id`: it settled, and whoever wakes
/// it next may drive it.
async fn release(inner: &Arc<Inner>, id: RunId) {
    let owner = &inner.owner;
    if let Err(err) = inner
        .durably("release run", || inner.store.release_run(id, owner))
        .await
    {
        tracing::warn!(error = %err, "lease not released; it expires on its own");
    }
}

/// A node execution: the node's index, the generation it was launched in
/// (see `Streams`), and how it ended.
type NodeFuture = Pin<Box<dyn Future<Output = (usize, u32, Finish)> + Send>>;

/// The next announcement of a first streamed item; never, for a run
/// without streams.
async fn next_announced(
    announced: &mut Option<mpsc::UnboundedReceiver<(usize, u32)>>,
) -> Option<(usize, u32)> {
    match announced {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Makes a recovering driver run every stream group that had not ended
/// when its last engine stopped again from its producer: what went down
/// streaming edges was not recorded. A group ended when its producer and
/// every consumer it fed have ended records; otherwise the records of its
/// nodes are dropped (they run again) and its producer's, if any, is
/// turned back to running, to run as its next attempt.
fn restart_unsettled_groups(workflow: &ValidatedWorkflow, records: &mut Vec<NodeExecution>) {
    let plan = &workflow.plan;
    let def = &workflow.definition;
    let ended = |r: &NodeExecution| {
        matches!(
            r.status,
            NodeStatus::Succeeded | NodeStatus::Failed | NodeStatus::Skipped
        )
    };
    for group in &plan.groups {
        let head = group[0];
        let record_of = |i: usize| records.iter().find(|r| r.node_id == def.nodes[i].id);
        // A node of it failed with nothing to route: the run fails on
        // loading, as it would have had the engine not stopped first.
        let failed = group.iter().any(|&m| {
            record_of(m).is_some_and(|r| r.status == NodeStatus::Failed && r.output.is_none())
        });
        let settled = failed
            || group.iter().all(|&m| {
                let record = record_of(m);
                if m == head {
                    return record.is_some_and(ended);
                }
                if record.is_some_and(|r| !ended(r)) {
                    return false;
                }
                // Fed by a producer that ended with the port taken: it ran,
                // and must have ended too.
                let fed = plan.stream_in(m).is_some_and(|e| {
                    let source = plan.ends[e].0;
                    record_of(source).is_some_and(|r| {
                        r.output
                            .as_ref()
                            .is_some_and(|o| o.is_taken(&def.edges[e].source_port))
                    })
                });
                !fed || record.is_some()
            });
        if settled {
            continue;
        }
        records.retain(|r| {
            let member = plan
                .index
                .get(&r.node_id)
                .is_some_and(|&i| plan.group_of[i] == plan.group_of[head]);
            !member || r.node_id == def.nodes[head].id
        });
        if let Some(record) = records.iter_mut().find(|r| r.node_id == def.nodes[head].id) {
            record.status = NodeStatus::Running;
            record.output = None;
            record.resumed = None;
            record.wait = None;
        }
    }
}

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

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::node::{Join, Node, NodeContext, NodeOutcome};
    use crate::{node::NodeCategory, NodeDescriptor, NodeRegistry, WorkflowDefinition};

    struct Plain;

    #[async_trait]
    impl Node for Plain {
        async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::Done(input))
        }
    }

    struct Streams;

    #[async_trait]
    impl Node for Streams {
        async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(NodeOutcome::main(Vec::new()))
        }

        fn join(&self) -> Join {
            Join::Stream
        }
    }

    /// start -> produce -> consume (streams) -> after.
    fn workflow() -> ValidatedWorkflow {
        let mut registry = NodeRegistry::new();
        registry
            .register_node(NodeDescriptor::new("plain", NodeCategory::Transform), Plain)
            .expect("registers");
        registry
            .register_node(
                NodeDescriptor::new("streams", NodeCategory::Transform),
                Streams,
            )
            .expect("registers");
        let def = WorkflowDefinition::from_value(json!({
            "id": "w", "name": "w",
            "nodes": [
                {"id": "start", "type": "plain"},
                {"id": "produce", "type": "plain"},
                {"id": "consume", "type": "streams"},
                {"id": "after", "type": "plain"}
            ],
            "edges": [
                {"source": "start", "target": "produce"},
                {"source": "produce", "target": "consume"},
                {"source": "consume", "target": "after"}
            ]
        }))
        .expect("parses");
        crate::validate::validate(&def, &registry).expect("valid")
    }

    fn record(node: &str, status: NodeStatus, output: Option<Ports>) -> NodeExecution {
        NodeExecution {
            run_id: RunId::new(),
            node_id: node.into(),
            node_type: Arc::from("plain"),
            status,
            attempt: 1,
            input: Ports::new(),
            output,
            error: None,
            wait: None,
            resumed: None,
            started_at: None,
            ended_at: None,
        }
    }

    fn statuses(records: &[NodeExecution]) -> Vec<(String, NodeStatus)> {
        records
            .iter()
            .map(|r| (r.node_id.to_string(), r.status))
            .collect()
    }

    #[test]
    fn a_group_whose_consumer_had_not_ended_runs_again_from_its_producer() {
        let streamed = Some(Ports::new().with("main", Vec::new()));
        let mut records = vec![
            record("start", NodeStatus::Succeeded, Some(Ports::new())),
            record("produce", NodeStatus::Succeeded, streamed.clone()),
            record("consume", NodeStatus::Running, None),
        ];
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(
            statuses(&records),
            [
                ("start".to_string(), NodeStatus::Succeeded),
                ("produce".to_string(), NodeStatus::Running)
            ]
        );
        assert!(records[1].output.is_none(), "its streamed output is gone");

        // Fed, and never recorded: it had not saved anything yet.
        let mut records = vec![record("produce", NodeStatus::Succeeded, streamed)];
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(
            statuses(&records),
            [("produce".to_string(), NodeStatus::Running)]
        );
    }

    #[test]
    fn an_ended_group_a_skipped_consumer_and_a_failed_one_stay_as_they_are() {
        let streamed = Some(Ports::new().with("main", Vec::new()));
        let ended = vec![
            record("produce", NodeStatus::Succeeded, streamed.clone()),
            record("consume", NodeStatus::Succeeded, Some(Ports::new())),
        ];
        let mut records = ended.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, ended);

        // The producer left the port untaken: its consumer is skipped.
        let untaken = vec![record("produce", NodeStatus::Succeeded, Some(Ports::new()))];
        let mut records = untaken.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, untaken);

        // The run was failing when its engine stopped: it fails on loading.
        let failing = vec![
            record("produce", NodeStatus::Running, None),
            record("consume", NodeStatus::Failed, None),
        ];
        let mut records = failing.clone();
        restart_unsettled_groups(&workflow(), &mut records);
        assert_eq!(records, failing);
    }
}
