//! Settling a run, stopping it, and giving up when fenced out.

use super::*;

impl RunDriver {
    /// Stores the run's state after its driver ran out of nodes to start,
    /// or ends it as failed; `running` holds the executions still going.
    pub(super) async fn settle(&mut self, running: &mut FuturesUnordered<NodeFuture>) {
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
    pub(super) async fn stop(
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
    pub(super) fn is_fenced(&self, err: &StoreError) -> bool {
        let fenced = err.kind() == crate::store::StoreErrorKind::Fenced;
        if fenced {
            telemetry::write_fenced(&self.tenant);
        }
        fenced
    }

    /// Stops driving the run after a write was fenced: another engine
    /// drives it now, so this one writes nothing more and gives up
    /// nothing (the lease is not its own any more).
    pub(super) fn fenced_out(&mut self) {
        let epoch = self.epoch;
        tracing::warn!(%epoch, "lease lost to another engine (a write was fenced); no longer driving the run");
        self.cancel.cancel();
    }

    pub(super) fn node_id(&self, i: Option<usize>) -> String {
        i.map(|i| self.workflow.definition.nodes[i].id.to_string())
            .unwrap_or_else(|| "?".into())
    }
}

/// Gives up this engine's lease on run `id`: it settled, and whoever wakes
/// it next may drive it.
pub(super) async fn release(inner: &Arc<Inner>, id: RunId) {
    let owner = &inner.owner;
    if let Err(err) = inner
        .durably("release run", || inner.store.release_run(id, owner))
        .await
    {
        tracing::warn!(error = %err, "lease not released; it expires on its own");
    }
}
