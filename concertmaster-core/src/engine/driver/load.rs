//! Loading a run: claiming its lease, reading it and its node records, and
//! rebuilding what the driver knows.

use super::*;

/// What a driver knows of its run before loading it.
pub(super) enum Known {
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
pub(super) enum Load {
    /// The run, claimed by this engine, ready to drive.
    Driver(Box<RunDriver>),
    /// Nothing to drive: no such run, or it has ended.
    Nothing,
    /// Another engine holds the run's lease and drives it.
    HeldElsewhere,
}

/// Cancels a run another engine drives: the run is ended in the store, and
/// that engine's next write into it is refused, which stops it there.
pub(super) async fn cancel_held_elsewhere(
    inner: &Arc<Inner>,
    tenant: &TenantId,
    id: RunId,
    reason: &str,
) {
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

impl RunDriver {
    /// Loads run `id` from the store, or from what the driver `known`s.
    pub(super) async fn load(
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
}
