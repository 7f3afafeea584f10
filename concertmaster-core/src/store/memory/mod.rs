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

mod engine;
mod services;
