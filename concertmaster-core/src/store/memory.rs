//! `InMemoryStore`: the embedded default, for tests, examples and quickstarts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    AuditEntry, AuditFilter, AuditStore, ConnectionStore, ContentStore, DatasetFilter,
    DatasetRecord, DatasetStore, DeliveryAudit, Epoch, FormStore, HeldWakeup, LeaseRequest,
    LeaseStore, RunClaim, RunMigration, RunStart, RunStore, Store, StoreError, StoreResult,
    StoredConnection, WaitStore, WakeFor, Woken, WorkflowStore,
};
use crate::form::{
    FormDraft, FormLink, FormResponse, FormSchema, ResponseFilter, Review, ReviewStatus, Submitter,
};
use crate::ids::{ContentId, FormId, NodeId, ResponseId, RunId, TenantId, WorkflowId};
use crate::node::{Resumed, Wakeup};
use crate::run::{NodeExecution, NodeStatus, Run, RunFilter, RunStatus, Wait};
use crate::workflow::WorkflowDefinition;

/// Maps keyed by ids made here, never by an attacker's choice of key
/// collisions: a fast hash, as every node execution looks several up.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A store that keeps everything in the process's memory.
///
/// It passes the same conformance suite as the SQL stores, so what works on
/// it works on them; what it holds is gone when the process ends. Clones
/// share the same data, so two engines built on clones see one store, as two
/// engines on one database would.
///
/// It keeps every run until the process ends, unless told to keep only the
/// latest ended ones ([`InMemoryStore::keep_ended_runs`]): what a
/// long-running host on this store wants, so that its memory holds the
/// runs in flight and a bounded history rather than every run since it
/// started.
#[derive(Debug, Default, Clone)]
pub struct InMemoryStore {
    state: std::sync::Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    workflows: HashMap<(TenantId, WorkflowId), BTreeMap<u32, WorkflowDefinition>>,
    runs: HashMap<RunId, Run>,
    executions: HashMap<RunId, Executions>,
    waits: HashMap<(TenantId, String), Wait>,
    timers: BTreeSet<(DateTime<Utc>, TenantId, String)>,
    leases: HashMap<RunId, Lease>,
    /// Wake-ups that came before their wait, per (tenant, key).
    held: HashMap<(TenantId, String), HeldWakeup>,
    audit: Vec<AuditEntry>,
    forms: HashMap<(TenantId, FormId), BTreeMap<u32, FormSchema>>,
    /// Token hash -> link.
    links: HashMap<String, FormLink>,
    /// Token hash -> the link's draft.
    drafts: HashMap<String, FormDraft>,
    responses: Vec<FormResponse>,
    /// (tenant, dataset) -> records, oldest first.
    datasets: HashMap<(TenantId, String), Vec<DatasetRecord>>,
    connections: BTreeMap<(TenantId, String), StoredConnection>,
    /// Ended runs, in the order they ended, while a bound is set.
    ended: VecDeque<RunId>,
    /// How many ended runs to keep; `None` keeps all.
    keep_ended: Option<usize>,
    /// (tenant, content) -> chunks in order.
    contents: HashMap<(TenantId, ContentId), BTreeMap<u32, Vec<u8>>>,
}

/// A run's lease. Kept when given up (with no owner), so that whoever takes
/// it next gets a greater epoch.
#[derive(Debug)]
struct Lease {
    /// Empty once given up.
    owner: String,
    until: DateTime<Utc>,
    epoch: Epoch,
}

/// Runs forgotten past the bound on ended runs, with their records: the
/// caller drops them once it has released the lock, as freeing a run's
/// records is most of what forgetting it costs.
type Forgotten = Vec<(Run, Option<Executions>)>;

#[derive(Debug, Default)]
struct Executions {
    by_node: HashMap<NodeId, usize>,
    list: Vec<NodeExecution>,
}

impl Executions {
    fn get_mut(&mut self, node: &NodeId) -> Option<&mut NodeExecution> {
        let i = *self.by_node.get(node)?;
        self.list.get_mut(i)
    }

    fn save(&mut self, execution: &NodeExecution) {
        match self.by_node.get(&execution.node_id) {
            Some(&i) => update_execution(&mut self.list[i], execution),
            None => {
                self.by_node
                    .insert(execution.node_id.clone(), self.list.len());
                self.list.push(execution.clone());
            }
        }
    }
}

/// Overwrites `stored` with `new`, a later record of the same node: its
/// identity fields stay as they are rather than being copied again.
fn update_execution(stored: &mut NodeExecution, new: &NodeExecution) {
    let NodeExecution {
        run_id: _,
        node_id: _,
        node_type,
        status,
        attempt,
        input,
        output,
        error,
        wait,
        resumed,
        started_at,
        ended_at,
    } = new;
    if stored.node_type != *node_type {
        stored.node_type.clone_from(node_type);
    }
    stored.status = *status;
    stored.attempt = *attempt;
    stored.input.clone_from(input);
    stored.output.clone_from(output);
    stored.error.clone_from(error);
    stored.wait.clone_from(wait);
    stored.resumed.clone_from(resumed);
    stored.started_at = *started_at;
    stored.ended_at = *ended_at;
}

impl State {
    fn run(&self, tenant: &TenantId, id: RunId) -> Option<&Run> {
        self.runs.get(&id).filter(|run| run.tenant == *tenant)
    }

    /// Takes the wait on `key`, if any, for `wakeup`: its node's record
    /// notes the wake-up and its run is marked running.
    fn take_wait(&mut self, tenant: &TenantId, key: &str, wakeup: Wakeup) -> Option<Wait> {
        let wait = self.remove_wait(tenant, key)?;
        if let Some(execution) = self
            .executions
            .get_mut(&wait.run_id)
            .and_then(|executions| executions.get_mut(&wait.node_id))
        {
            execution.wait = None;
            execution.resumed = Some(Box::new(Resumed {
                wakeup,
                state: wait.state.clone(),
            }));
        }
        if let Some(run) = self.runs.get_mut(&wait.run_id) {
            if run.status == RunStatus::Waiting {
                run.status = RunStatus::Running;
            }
        }
        Some(wait)
    }

    /// `WaitStore::deliver` under the lock.
    fn deliver(&mut self, tenant: &TenantId, wakeup: &HeldWakeup) -> Option<Wait> {
        if let Some(wait) = self.take_wait(tenant, &wakeup.key, wakeup.wakeup()) {
            return Some(wait);
        }
        let slot = (tenant.clone(), wakeup.key.clone());
        if self.held.get(&slot).is_none_or(|held| held.expired) {
            self.held.insert(
                slot,
                HeldWakeup {
                    expired: false,
                    ..wakeup.clone()
                },
            );
        }
        None
    }

    fn remove_wait(&mut self, tenant: &TenantId, key: &str) -> Option<Wait> {
        let wait = self.waits.remove(&(tenant.clone(), key.to_string()))?;
        if let Some(until) = wait.until {
            self.timers
                .remove(&(until, tenant.clone(), key.to_string()));
        }
        Some(wait)
    }
}

impl State {
    /// Whether run `id` should be driven: as `runs_in_flight` defines it.
    fn in_flight(&self, run: &Run) -> bool {
        run.status.is_in_flight()
            || (run.status == RunStatus::Waiting
                && self.executions.get(&run.id).is_some_and(|e| {
                    e.list
                        .iter()
                        .any(|n| n.status == NodeStatus::Waiting && n.resumed.is_some())
                }))
    }

    fn lease_free(&self, id: RunId, owner: &str, now: DateTime<Utc>) -> bool {
        match self.leases.get(&id) {
            None => true,
            Some(lease) => lease.owner.is_empty() || lease.owner == owner || lease.until < now,
        }
    }

    /// Takes the lease of run `id` for `owner` (the caller checked that it
    /// is free for `owner`); returns its epoch.
    fn take_lease(&mut self, id: RunId, owner: &str, until: DateTime<Utc>) -> Epoch {
        match self.leases.get_mut(&id) {
            Some(lease) => {
                if lease.owner != owner {
                    lease.owner = owner.to_string();
                    lease.epoch = Epoch::new(lease.epoch.get() + 1);
                }
                lease.until = until;
                lease.epoch
            }
            None => {
                self.leases.insert(
                    id,
                    Lease {
                        owner: owner.to_string(),
                        until,
                        epoch: Epoch::FIRST,
                    },
                );
                Epoch::FIRST
            }
        }
    }

    /// Refuses a write into run `id` by an engine whose lease epoch is
    /// `epoch`, unless that is the run's current epoch. A lease its holder
    /// gave up keeps its epoch until another takes it: the holder's own
    /// write repeated after an answer was lost still lands.
    fn check_fence(&self, id: RunId, epoch: Epoch) -> StoreResult<()> {
        match self.leases.get(&id) {
            Some(lease) if lease.epoch == epoch => Ok(()),
            _ => Err(StoreError::Fenced { run: id, epoch }),
        }
    }

    /// Refuses `execution` when it would move its node's record backwards.
    fn check_forward(&self, execution: &NodeExecution) -> StoreResult<()> {
        let stored = self
            .executions
            .get(&execution.run_id)
            .and_then(|e| e.by_node.get(&execution.node_id).map(|&i| &e.list[i]));
        match stored.and_then(|stored| StoreError::check_forward(stored, execution)) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// The checks of a driver's write of `execution` into an open run.
    fn check_node_write(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()> {
        self.open_run(tenant, execution.run_id)?;
        self.check_fence(execution.run_id, epoch)?;
        self.check_forward(execution)
    }

    fn insert_run(&mut self, run: &Run) -> StoreResult<()> {
        if self.runs.contains_key(&run.id) {
            return Err(StoreError::Conflict {
                entity: "run",
                id: run.id.to_string(),
                message: "a run with this id exists".into(),
            });
        }
        self.runs.insert(run.id, run.clone());
        if run.status.is_terminal() {
            // Rare (a host storing an ended run): dropped under the lock.
            drop(self.run_ended(run.id));
            return Ok(());
        }
        // Room for a record per node up front: growing the list as the run
        // goes would copy its records again and again.
        let nodes = self
            .workflows
            .get(&(run.tenant.clone(), run.workflow_id.clone()))
            .and_then(|versions| versions.get(&run.workflow_version))
            .map_or(0, |definition| definition.nodes.len());
        if nodes > 0 {
            self.executions.entry(run.id).or_insert_with(|| Executions {
                by_node: HashMap::with_capacity_and_hasher(nodes, Default::default()),
                list: Vec::with_capacity(nodes),
            });
        }
        Ok(())
    }

    fn release(&mut self, id: RunId, owner: &str) {
        if let Some(lease) = self.leases.get_mut(&id) {
            if lease.owner == owner {
                lease.owner.clear();
            }
        }
    }
}

impl InMemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps at most the `n` runs that ended last (succeeded, failed or
    /// cancelled), with their node records and leases; when one more
    /// ends, the run that ended first is forgotten, as if never stored.
    /// Runs in flight and waiting runs are always kept, whatever their
    /// number. A forgotten run is no longer found, listed or re-run, and a
    /// [`start_once`](crate::Engine::start_once) key is remembered only as
    /// long as its run is. Audit entries, form responses and content stay.
    /// Applies to every clone of this store.
    pub fn keep_ended_runs(self, n: usize) -> Self {
        {
            let mut state = self.state();
            // Runs that ended before the bound was set count too, oldest
            // end first.
            let mut ended: Vec<(Option<DateTime<Utc>>, RunId)> = state
                .runs
                .values()
                .filter(|run| run.status.is_terminal())
                .map(|run| (run.ended_at, run.id))
                .collect();
            ended.sort();
            state.ended = ended.into_iter().map(|(_, id)| id).collect();
            state.keep_ended = Some(n);
            drop(state.forget_ended_past_bound());
        }
        self
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every method validates before it mutates.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    /// Notes that run `id` has ended, forgetting the oldest ended runs past
    /// the bound, if one is set.
    #[must_use = "what was forgotten is dropped once the lock is released"]
    fn run_ended(&mut self, id: RunId) -> Forgotten {
        if self.keep_ended.is_none() {
            return Vec::new();
        }
        self.ended.push_back(id);
        self.forget_ended_past_bound()
    }

    #[must_use = "what was forgotten is dropped once the lock is released"]
    fn forget_ended_past_bound(&mut self) -> Forgotten {
        let mut forgotten = Vec::new();
        let Some(keep) = self.keep_ended else {
            return forgotten;
        };
        while self.ended.len() > keep {
            let Some(id) = self.ended.pop_front() else {
                break;
            };
            // Each run is noted once, when it ends, and an ended run does not
            // start again; the check keeps a mistake here from dropping a
            // run in flight.
            if self
                .runs
                .get(&id)
                .is_some_and(|run| run.status.is_terminal())
            {
                if let Some(run) = self.runs.remove(&id) {
                    forgotten.push((run, self.executions.remove(&id)));
                }
                self.leases.remove(&id);
            }
        }
        forgotten
    }

    /// Stores `new` over the stored run of its id, copying only what
    /// differs: a run's trigger items, most of what it holds, are written
    /// once, when it starts.
    fn overwrite_run(&mut self, new: &Run) {
        let Some(stored) = self.runs.get_mut(&new.id) else {
            self.runs.insert(new.id, new.clone());
            return;
        };
        let Run {
            id: _,
            tenant,
            workflow_id,
            workflow_version,
            status,
            trigger_node,
            trigger,
            created_at,
            ended_at,
            error,
            origin,
            parent,
        } = new;
        stored.tenant.clone_from(tenant);
        stored.workflow_id.clone_from(workflow_id);
        stored.workflow_version = *workflow_version;
        stored.status = *status;
        stored.trigger_node.clone_from(trigger_node);
        if stored.trigger != *trigger {
            stored.trigger.clone_from(trigger);
        }
        stored.created_at = *created_at;
        stored.ended_at = *ended_at;
        stored.error.clone_from(error);
        stored.origin.clone_from(origin);
        stored.parent.clone_from(parent);
    }

    /// Run `id` of `tenant`, if it exists and has not ended.
    fn open_run(&self, tenant: &TenantId, id: RunId) -> StoreResult<&Run> {
        match self.run(tenant, id) {
            None => Err(StoreError::run_not_found(id)),
            Some(run) if run.status.is_terminal() => Err(StoreError::run_ended(id)),
            Some(run) => Ok(run),
        }
    }
}

/// Stores `value` as `version`; a version stored already is refused (its
/// number is the error).
fn insert_version<T: Clone>(
    versions: &mut BTreeMap<u32, T>,
    version: u32,
    value: &T,
) -> Result<(), u32> {
    if versions.contains_key(&version) {
        return Err(version);
    }
    versions.insert(version, value.clone());
    Ok(())
}

/// Version `version`, or the latest when `None`.
fn pick_version<T: Clone>(versions: Option<&BTreeMap<u32, T>>, version: Option<u32>) -> Option<T> {
    let versions = versions?;
    match version {
        Some(v) => versions.get(&v).cloned(),
        None => versions.values().next_back().cloned(),
    }
}

/// The records of an append-only log that `keep` accepts, newest by `at`
/// first (records with the same time: last appended first), at most `limit`.
fn newest_first<T: Clone>(
    log: &[T],
    keep: impl Fn(&T) -> bool,
    at: impl Fn(&T) -> DateTime<Utc>,
    limit: usize,
) -> Vec<T> {
    let mut found: Vec<T> = log.iter().rev().filter(|r| keep(r)).cloned().collect();
    // A stable sort: equal times keep the newest-appended-first order.
    found.sort_by_key(|r| std::cmp::Reverse(at(r)));
    found.truncate(limit);
    found
}

impl Store for InMemoryStore {
    fn content_store(&self) -> Option<Arc<dyn ContentStore>> {
        Some(Arc::new(self.clone()))
    }
}

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

#[async_trait]
impl FormStore for InMemoryStore {
    async fn insert_form(&self, tenant: &TenantId, form: &FormSchema) -> StoreResult<()> {
        let mut state = self.state();
        let versions = state
            .forms
            .entry((tenant.clone(), form.id.clone()))
            .or_default();
        insert_version(versions, form.version, form)
            .map_err(|v| StoreError::version_exists("form", &form.id, v, "store a new version"))
    }

    async fn form(
        &self,
        tenant: &TenantId,
        id: &FormId,
        version: Option<u32>,
    ) -> StoreResult<Option<FormSchema>> {
        let state = self.state();
        Ok(pick_version(
            state.forms.get(&(tenant.clone(), id.clone())),
            version,
        ))
    }

    async fn insert_link(&self, link: &FormLink) -> StoreResult<()> {
        let mut state = self.state();
        if state.links.contains_key(&link.token_hash) {
            return Err(StoreError::link_refused("a link with this token exists"));
        }
        state.links.insert(link.token_hash.clone(), link.clone());
        Ok(())
    }

    async fn link(&self, token_hash: &str) -> StoreResult<Option<FormLink>> {
        Ok(self.state().links.get(token_hash).cloned())
    }

    async fn insert_response(
        &self,
        response: &FormResponse,
        link: Option<&str>,
        wake: Option<&HeldWakeup>,
    ) -> StoreResult<Option<Wait>> {
        let mut state = self.state();
        if state.responses.iter().any(|r| r.id == response.id) {
            return Err(StoreError::Conflict {
                entity: "form response",
                id: response.id.to_string(),
                message: "a response with this id exists".into(),
            });
        }
        if let Some(hash) = link {
            let Some(stored) = state
                .links
                .get_mut(hash)
                .filter(|l| l.tenant == response.tenant)
            else {
                return Err(StoreError::NotFound {
                    entity: "form link",
                    id: "(token)".into(),
                });
            };
            if stored.used_at.is_some() {
                return Err(StoreError::link_refused("the link has been used already"));
            }
            if stored.expires_at <= response.submitted_at {
                return Err(StoreError::link_refused("the link has expired"));
            }
            stored.used_at = Some(response.submitted_at);
            state.drafts.remove(hash);
        }
        state.responses.push(response.clone());
        Ok(wake.and_then(|wake| state.deliver(&response.tenant, wake)))
    }

    async fn save_draft(&self, draft: &FormDraft) -> StoreResult<()> {
        let mut state = self.state();
        let Some(link) = state
            .links
            .get(&draft.token_hash)
            .filter(|l| l.tenant == draft.tenant)
        else {
            return Err(StoreError::NotFound {
                entity: "form link",
                id: "(token)".into(),
            });
        };
        if link.used_at.is_some() {
            return Err(StoreError::link_refused("the link has been used already"));
        }
        if link.expires_at <= draft.saved_at {
            return Err(StoreError::link_refused("the link has expired"));
        }
        state.drafts.insert(draft.token_hash.clone(), draft.clone());
        Ok(())
    }

    async fn draft(&self, token_hash: &str) -> StoreResult<Option<FormDraft>> {
        Ok(self.state().drafts.get(token_hash).cloned())
    }

    async fn responses(
        &self,
        tenant: &TenantId,
        filter: &ResponseFilter,
    ) -> StoreResult<Vec<FormResponse>> {
        Ok(newest_first(
            &self.state().responses,
            |r| r.tenant == *tenant && filter.matches(r),
            |r| r.submitted_at,
            filter.effective_limit(),
        ))
    }

    async fn review_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        review: &Review,
        wake: &WakeFor,
    ) -> StoreResult<(FormResponse, Option<Wait>)> {
        let mut state = self.state();
        let response = state
            .responses
            .iter_mut()
            .find(|r| r.id == id && r.tenant == *tenant)
            .ok_or_else(|| StoreError::response_not_found(id))?;
        if response.review_status != ReviewStatus::Pending {
            return Err(StoreError::already_reviewed(id));
        }
        response.review_status = review.status;
        response.review = Some(review.clone());
        let response = response.clone();
        let woke = wake(&response).and_then(|wake| state.deliver(tenant, &wake));
        Ok((response, woke))
    }

    async fn erase_response(
        &self,
        tenant: &TenantId,
        id: ResponseId,
        data: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let response = state
            .responses
            .iter_mut()
            .find(|r| r.id == id && r.tenant == *tenant)
            .ok_or_else(|| StoreError::response_not_found(id))?;
        response.data = data.clone();
        response.respondent = None;
        response.submitter = Submitter::default();
        response.erased_at = Some(at);
        Ok(())
    }

    async fn delete_responses(
        &self,
        tenant: &TenantId,
        form_id: &FormId,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut state = self.state();
        let before_len = state.responses.len();
        state
            .responses
            .retain(|r| !(r.tenant == *tenant && r.form_id == *form_id && r.submitted_at < before));
        let deleted = (before_len - state.responses.len()) as u64;
        let State { drafts, links, .. } = &mut *state;
        drafts.retain(|hash, draft| {
            let of_form = links
                .get(hash)
                .is_some_and(|l| l.tenant == *tenant && l.form_id == *form_id);
            !(of_form && draft.saved_at < before)
        });
        Ok(deleted)
    }
}

#[async_trait]
impl ContentStore for InMemoryStore {
    async fn put_chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
        bytes: &[u8],
    ) -> StoreResult<()> {
        let mut state = self.state();
        let chunks = state.contents.entry((tenant.clone(), id)).or_default();
        if chunks.contains_key(&seq) {
            return Err(StoreError::Conflict {
                entity: "content chunk",
                id: format!("{id}/{seq}"),
                message: "stored already; content does not change".into(),
            });
        }
        chunks.insert(seq, bytes.to_vec());
        Ok(())
    }

    async fn chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .state()
            .contents
            .get(&(tenant.clone(), id))
            .and_then(|chunks| chunks.get(&seq).cloned()))
    }

    async fn delete_content(&self, tenant: &TenantId, id: ContentId) -> StoreResult<u64> {
        Ok(self
            .state()
            .contents
            .remove(&(tenant.clone(), id))
            .map_or(0, |chunks| chunks.len() as u64))
    }
}

#[async_trait]
impl DatasetStore for InMemoryStore {
    async fn put_dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        run: RunId,
        node: &NodeId,
        items: &[crate::item::Item],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut state = self.state();
        let records = state
            .datasets
            .entry((tenant.clone(), name.to_string()))
            .or_default();
        records.retain(|r| !(r.run_id == run && r.node_id == *node));
        for (position, item) in items.iter().enumerate() {
            records.push(DatasetRecord {
                run_id: run,
                node_id: node.clone(),
                position: u32::try_from(position).unwrap_or(u32::MAX),
                item: item.clone(),
                collected_at: at,
            });
        }
        Ok(())
    }

    async fn dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>> {
        let state = self.state();
        let mut found: Vec<DatasetRecord> = state
            .datasets
            .get(&(tenant.clone(), name.to_string()))
            .map(|records| {
                records
                    .iter()
                    .filter(|r| filter.run_id.is_none_or(|run| r.run_id == run))
                    .filter(|r| filter.since.is_none_or(|t| r.collected_at >= t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        found.sort_by(|a, b| {
            b.collected_at
                .cmp(&a.collected_at)
                .then(b.run_id.cmp(&a.run_id))
                .then(a.node_id.cmp(&b.node_id))
                .then(a.position.cmp(&b.position))
        });
        found.truncate(filter.effective_limit());
        Ok(found)
    }
}

#[async_trait]
impl ConnectionStore for InMemoryStore {
    async fn save_connection(&self, connection: &StoredConnection) -> StoreResult<()> {
        self.state().connections.insert(
            (connection.tenant.clone(), connection.id.clone()),
            connection.clone(),
        );
        Ok(())
    }

    async fn replace_connection(
        &self,
        connection: &StoredConnection,
        previous: &StoredConnection,
    ) -> StoreResult<bool> {
        let mut state = self.state();
        let key = (previous.tenant.clone(), previous.id.clone());
        match state.connections.get_mut(&key) {
            Some(stored)
                if stored == previous
                    && (&connection.tenant, &connection.id) == (&previous.tenant, &previous.id) =>
            {
                *stored = connection.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn connection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .get(&(tenant.clone(), id.to_string()))
            .cloned())
    }

    async fn connections(&self, tenant: &TenantId) -> StoreResult<Vec<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.tenant == *tenant)
            .cloned()
            .collect())
    }

    async fn mark_tested(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let mut state = self.state();
        let connection = state
            .connections
            .get_mut(&(tenant.clone(), id.to_string()))
            .ok_or_else(|| StoreError::NotFound {
                entity: "connection",
                id: id.to_string(),
            })?;
        connection.last_tested_at = Some(at);
        Ok(())
    }

    async fn connections_sealed_with(
        &self,
        key_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredConnection>> {
        Ok(self
            .state()
            .connections
            .values()
            .filter(|c| c.key_id == key_id)
            .take(limit)
            .cloned()
            .collect())
    }
}
