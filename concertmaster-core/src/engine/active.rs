//! The runs this engine drives: one driver per run, signals routed to it,
//! room counted per tenant.

use super::*;

pub(super) struct ActiveRun {
    pub(super) tenant: TenantId,
    pub(super) signals: mpsc::UnboundedSender<Signal>,
    pub(super) task: tokio::task::AbortHandle,
}

/// The runs this engine drives, and how many of each tenant.
#[derive(Default)]
pub(super) struct Active {
    pub(super) runs: HashMap<RunId, ActiveRun>,
    pub(super) per_tenant: HashMap<TenantId, usize>,
}

impl Active {
    pub(super) fn len(&self) -> usize {
        self.runs.len()
    }

    pub(super) fn get(&self, id: &RunId) -> Option<&ActiveRun> {
        self.runs.get(id)
    }

    pub(super) fn insert(&mut self, id: RunId, run: ActiveRun) {
        *self.per_tenant.entry(run.tenant.clone()).or_default() += 1;
        if let Some(replaced) = self.runs.insert(id, run) {
            self.forget(&replaced.tenant);
        }
    }

    pub(super) fn remove(&mut self, id: &RunId) {
        if let Some(run) = self.runs.remove(id) {
            self.forget(&run.tenant);
        }
    }

    pub(super) fn forget(&mut self, tenant: &TenantId) {
        if let Some(n) = self.per_tenant.get_mut(tenant) {
            *n -= 1;
            if *n == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }

    /// Whether one more run of `tenant` fits within `limits`.
    pub(super) fn has_room(&self, tenant: &TenantId, limits: &Limits) -> bool {
        self.len() < limits.max_active_runs
            && limits
                .max_active_runs_per_tenant
                .is_none_or(|quota| self.per_tenant.get(tenant).copied().unwrap_or(0) < quota)
    }

    /// The tenants whose quota is full.
    pub(super) fn full_tenants(&self, limits: &Limits) -> Vec<TenantId> {
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

impl Inner {
    pub(super) fn active(&self) -> MutexGuard<'_, Active> {
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn is_active(&self, id: RunId) -> bool {
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
}
