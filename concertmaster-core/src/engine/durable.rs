//! What keeps runs moving through outages and stalls: store calls retried
//! with back-off, runs in flight no engine drives picked up, leases renewed
//! and given back, due timers fired, held wake-ups expired.

use super::*;

impl Inner {
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
    pub(super) async fn retry_durably<T, F, Fut>(
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

    pub(super) async fn fire_due_timers(self: &Arc<Self>) -> Result<usize> {
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
