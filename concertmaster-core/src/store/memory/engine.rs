//! The engine's traits on the in-memory state.

use super::*;

#[async_trait]
impl WorkflowStore for InMemoryStore {
    async fn insert_workflow(
        &self,
        tenant: &TenantId,
        def: &WorkflowDefinition,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let versions = state
            .workflows
            .entry((tenant.clone(), def.id.clone()))
            .or_default();
        insert_version(versions, def.version, def).map_err(|v| {
            StoreError::version_exists("workflow", &def.id, v, "publish a new version")
        })
    }

    async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> StoreResult<Option<WorkflowDefinition>> {
        let state = self.state();
        Ok(pick_version(
            state.workflows.get(&(tenant.clone(), id.clone())),
            version,
        ))
    }

    async fn workflow_versions(&self, tenant: &TenantId, id: &WorkflowId) -> StoreResult<Vec<u32>> {
        let state = self.state();
        Ok(state
            .workflows
            .get(&(tenant.clone(), id.clone()))
            .map(|versions| versions.keys().copied().collect())
            .unwrap_or_default())
    }

    async fn workflows(&self, tenant: &TenantId) -> StoreResult<Vec<WorkflowDefinition>> {
        let state = self.state();
        let mut latest: Vec<WorkflowDefinition> = state
            .workflows
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .filter_map(|(_, versions)| versions.values().next_back().cloned())
            .collect();
        latest.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(latest)
    }
}

#[async_trait]
impl RunStore for InMemoryStore {
    async fn insert_run(&self, run: &Run) -> StoreResult<()> {
        self.state().insert_run(run)
    }

    async fn start_run(&self, start: &RunStart<'_>) -> StoreResult<()> {
        let mut state = self.state();
        state.insert_run(start.run)?;
        state.take_lease(start.run.id, start.owner, start.lease_until);
        state.audit.push(start.audit.clone());
        Ok(())
    }

    async fn settle_run(
        &self,
        run: &Run,
        owner: &str,
        epoch: Epoch,
        steps: &[NodeExecution],
    ) -> StoreResult<()> {
        // Declared first, so dropped after the lock is released.
        let _forgotten: Forgotten;
        let mut state = self.state();
        state.open_run(&run.tenant, run.id)?;
        state.check_fence(run.id, epoch)?;
        // Every step checked before any is saved: all of it, or nothing.
        for step in steps {
            state.check_node_write(&run.tenant, step, epoch)?;
        }
        for step in steps {
            state.executions.entry(step.run_id).or_default().save(step);
        }
        state.overwrite_run(run);
        state.release(run.id, owner);
        if run.status.is_terminal() {
            _forgotten = state.run_ended(run.id);
        }
        Ok(())
    }

    async fn run(&self, tenant: &TenantId, id: RunId) -> StoreResult<Option<Run>> {
        Ok(self.state().run(tenant, id).cloned())
    }

    async fn update_run(&self, run: &Run, epoch: Epoch) -> StoreResult<()> {
        // Declared first, so dropped after the lock is released.
        let _forgotten: Forgotten;
        let mut state = self.state();
        state.open_run(&run.tenant, run.id)?;
        state.check_fence(run.id, epoch)?;
        state.overwrite_run(run);
        if run.status.is_terminal() {
            _forgotten = state.run_ended(run.id);
        }
        Ok(())
    }

    async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>> {
        let state = self.state();
        let mut runs: Vec<Run> = state
            .runs
            .values()
            .filter(|run| run.tenant == *tenant && filter.matches(run))
            .cloned()
            .collect();
        runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        runs.truncate(filter.effective_limit());
        Ok(runs)
    }

    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()> {
        let mut state = self.state();
        state.check_node_write(tenant, execution, epoch)?;
        state
            .executions
            .entry(execution.run_id)
            .or_default()
            .save(execution);
        Ok(())
    }

    async fn node_executions(
        &self,
        tenant: &TenantId,
        id: RunId,
    ) -> StoreResult<Vec<NodeExecution>> {
        let state = self.state();
        if state.run(tenant, id).is_none() {
            return Ok(Vec::new());
        }
        Ok(state
            .executions
            .get(&id)
            .map(|e| e.list.clone())
            .unwrap_or_default())
    }

    async fn end_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        status: RunStatus,
        reason: &str,
        at: DateTime<Utc>,
        epoch: Option<Epoch>,
    ) -> StoreResult<Option<Run>> {
        if let Some(refused) = StoreError::check_end_status(id, status) {
            return Err(refused);
        }
        // Declared first, so dropped after the lock is released.
        let _forgotten: Forgotten;
        let mut state = self.state();
        let Some(run) = state.run(tenant, id).cloned() else {
            return Ok(None);
        };
        if run.status.is_terminal() {
            return Ok(Some(run));
        }
        if let Some(epoch) = epoch {
            state.check_fence(id, epoch)?;
        }
        let mut keys = Vec::new();
        if let Some(executions) = state.executions.get_mut(&id) {
            for execution in &mut executions.list {
                if matches!(execution.status, NodeStatus::Running | NodeStatus::Waiting) {
                    if let Some(wait) = execution.wait.take() {
                        keys.push(wait.key);
                    }
                    execution.status = NodeStatus::Cancelled;
                    execution.ended_at = Some(at);
                }
            }
        }
        for key in keys {
            state.remove_wait(tenant, &key);
        }
        let ended = Run {
            status,
            error: Some(reason.to_string()),
            ended_at: Some(at),
            ..run
        };
        state.runs.insert(id, ended.clone());
        _forgotten = state.run_ended(id);
        Ok(Some(ended))
    }

    async fn migrate_run(&self, migration: &RunMigration<'_>) -> StoreResult<()> {
        let mut state = self.state();
        let id = migration.run;
        let run = state
            .run(migration.tenant, id)
            .ok_or_else(|| StoreError::run_not_found(id))?;
        if run.status != RunStatus::Waiting || run.workflow_version != migration.from_version {
            return Err(StoreError::not_waiting_on(id, migration.from_version));
        }
        if let Some(run) = state.runs.get_mut(&id) {
            run.workflow_version = migration.to_version;
        }
        let mut renamed_waits = Vec::new();
        if let Some(executions) = state.executions.get_mut(&id) {
            for (old, new) in migration.renames {
                let Some(i) = executions.by_node.remove(old) else {
                    continue;
                };
                let execution = &mut executions.list[i];
                execution.node_id = new.clone();
                if let Some(wait) = &mut execution.wait {
                    wait.node_id = new.clone();
                    renamed_waits.push((wait.key.clone(), new.clone()));
                }
                executions.by_node.insert(new.clone(), i);
            }
        }
        for (key, node) in renamed_waits {
            if let Some(wait) = state.waits.get_mut(&(migration.tenant.clone(), key)) {
                wait.node_id = node;
            }
        }
        state.audit.push(migration.audit.clone());
        Ok(())
    }

    async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>> {
        let state = self.state();
        let mut runs: Vec<&Run> = state.runs.values().filter(|r| state.in_flight(r)).collect();
        runs.sort_by_key(|r| (r.created_at, r.id));
        Ok(runs.into_iter().map(|r| (r.tenant.clone(), r.id)).collect())
    }
}

#[async_trait]
impl WaitStore for InMemoryStore {
    async fn suspend_node(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<Option<Resumed>> {
        let Some(wait) = execution.wait.clone() else {
            return Err(StoreError::Conflict {
                entity: "node execution",
                id: format!("{}/{}", execution.run_id, execution.node_id),
                message: "a suspended node needs a wait".into(),
            });
        };
        let mut state = self.state();
        state.check_node_write(tenant, execution, epoch)?;
        let slot = (tenant.clone(), wait.key.clone());
        if state.held.get(&slot).is_some_and(|held| !held.expired) {
            if let Some(held) = state.held.remove(&slot) {
                let resumed = Resumed {
                    wakeup: held.wakeup(),
                    state: wait.state.clone(),
                };
                let mut woken = execution.clone();
                woken.wait = None;
                woken.resumed = Some(Box::new(resumed.clone()));
                state
                    .executions
                    .entry(execution.run_id)
                    .or_default()
                    .save(&woken);
                return Ok(Some(resumed));
            }
        }
        if let Some(existing) = state.waits.get(&slot) {
            if existing.run_id != wait.run_id || existing.node_id != wait.node_id {
                return Err(StoreError::Conflict {
                    entity: "wait",
                    id: wait.key.clone(),
                    message: format!(
                        "node {} of run {} already waits on this key; wait keys must be unique per tenant",
                        existing.node_id, existing.run_id
                    ),
                });
            }
        }
        state.remove_wait(tenant, &wait.key);
        if let Some(until) = wait.until {
            state
                .timers
                .insert((until, tenant.clone(), wait.key.clone()));
        }
        state.waits.insert(slot, *wait);
        state
            .executions
            .entry(execution.run_id)
            .or_default()
            .save(execution);
        Ok(None)
    }

    async fn take_wait(
        &self,
        tenant: &TenantId,
        key: &str,
        wakeup: Wakeup,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Wait>> {
        let mut state = self.state();
        let taken = state.take_wait(tenant, key, wakeup);
        if let (Some(wait), Some(audit)) = (&taken, audit) {
            state.audit.push(audit.resumed(tenant, wait, key));
        }
        Ok(taken)
    }

    async fn deliver(
        &self,
        tenant: &TenantId,
        wakeup: &HeldWakeup,
        lease: Option<LeaseRequest<'_>>,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Woken>> {
        let mut state = self.state();
        let ended = state.deliver(tenant, wakeup);
        if let Some(audit) = audit {
            state
                .audit
                .push(audit.entry(tenant, wakeup, ended.as_ref()));
        }
        let Some(wait) = ended else {
            return Ok(None);
        };
        let epoch = lease.and_then(|lease| {
            state
                .lease_free(wait.run_id, lease.owner, lease.now)
                .then(|| state.take_lease(wait.run_id, lease.owner, lease.until))
        });
        Ok(Some(Woken { wait, epoch }))
    }

    async fn held_wakeups(&self, tenant: &TenantId) -> StoreResult<Vec<HeldWakeup>> {
        let state = self.state();
        let mut held: Vec<HeldWakeup> = state
            .held
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, held)| held.clone())
            .collect();
        held.sort_by(|a, b| (a.received_at, &a.key).cmp(&(b.received_at, &b.key)));
        Ok(held)
    }

    async fn expire_wakeups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, HeldWakeup)>> {
        let mut state = self.state();
        let mut due: Vec<(TenantId, HeldWakeup)> = state
            .held
            .iter()
            .filter(|(_, held)| !held.expired && held.expires_at <= now)
            .map(|((tenant, _), held)| (tenant.clone(), held.clone()))
            .collect();
        due.sort_by(|a, b| (a.1.expires_at, &a.1.key).cmp(&(b.1.expires_at, &b.1.key)));
        due.truncate(limit);
        for (tenant, held) in &mut due {
            held.expired = true;
            if let Some(stored) = state.held.get_mut(&(tenant.clone(), held.key.clone())) {
                stored.expired = true;
            }
        }
        Ok(due)
    }

    async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> StoreResult<bool> {
        Ok(self
            .state()
            .held
            .remove(&(tenant.clone(), key.to_string()))
            .is_some())
    }

    async fn due_waits(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, Wait)>> {
        let state = self.state();
        Ok(state
            .timers
            .iter()
            .take_while(|(until, _, _)| *until <= now)
            .take(limit)
            .filter_map(|(_, tenant, key)| {
                state
                    .waits
                    .get(&(tenant.clone(), key.clone()))
                    .map(|wait| (tenant.clone(), wait.clone()))
            })
            .collect())
    }

    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self
            .state()
            .timers
            .iter()
            .next()
            .map(|(until, _, _)| *until))
    }
}

#[async_trait]
impl LeaseStore for InMemoryStore {
    async fn claim_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Epoch>> {
        let mut state = self.state();
        if state.run(tenant, id).is_none() || !state.lease_free(id, owner, now) {
            return Ok(None);
        }
        Ok(Some(state.take_lease(id, owner, until)))
    }

    async fn claim_runs(&self, claim: &RunClaim<'_>) -> StoreResult<Vec<(TenantId, RunId)>> {
        let mut state = self.state();
        let mut free: Vec<&Run> = state
            .runs
            .values()
            .filter(|r| {
                !claim.skip.contains(&r.tenant)
                    && state.in_flight(r)
                    && state.lease_free(r.id, claim.owner, claim.now)
            })
            .collect();
        free.sort_by_key(|r| (r.created_at, r.id));
        let mut per_tenant: HashMap<&TenantId, usize> = HashMap::default();
        let claimed: Vec<(TenantId, RunId)> = free
            .into_iter()
            .filter(|r| {
                let n = per_tenant.entry(&r.tenant).or_default();
                *n += 1;
                *n <= claim.per_tenant
            })
            .take(claim.limit)
            .map(|r| (r.tenant.clone(), r.id))
            .collect();
        for (_, id) in &claimed {
            state.take_lease(*id, claim.owner, claim.until);
        }
        Ok(claimed)
    }

    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[RunId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunId>> {
        let mut state = self.state();
        let mut lost = Vec::new();
        for id in runs {
            match state.leases.get_mut(id) {
                Some(lease) if lease.owner == owner => lease.until = until,
                Some(lease) if lease.owner.is_empty() => {}
                _ => lost.push(*id),
            }
        }
        Ok(lost)
    }

    async fn release_run(&self, id: RunId, owner: &str) -> StoreResult<()> {
        self.state().release(id, owner);
        Ok(())
    }
}

#[async_trait]
impl AuditStore for InMemoryStore {
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()> {
        self.state().audit.push(entry.clone());
        Ok(())
    }

    async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>> {
        Ok(newest_first(
            &self.state().audit,
            |e| e.tenant == *tenant && filter.matches(e),
            |e| e.at,
            filter.effective_limit(),
        ))
    }
}
