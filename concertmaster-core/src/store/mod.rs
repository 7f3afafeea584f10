//! The `Store` seam between the engine and its persistence.
//!
//! For backend authors, and hosts reading the audit log or holding a
//! store beside the engine. [`Store`] and [`InMemoryStore`] are also at
//! the crate root.
//!
//! A store is small traits, one per area. The engine needs five
//! ([`WorkflowStore`], [`RunStore`], [`WaitStore`], [`LeaseStore`],
//! [`AuditStore`]; together [`Store`]); forms ([`FormStore`]), datasets
//! ([`DatasetStore`]), connections ([`ConnectionStore`]) and large values
//! ([`ContentStore`]) are implemented by the backends that keep them, and
//! a [`Backend`] keeps all. Every data call takes the tenant it acts for and
//! never returns or changes another tenant's records. The only calls that
//! span tenants are the engine's maintenance calls ([`RunStore::runs_in_flight`],
//! [`WaitStore::due_waits`], [`WaitStore::next_due`]), which return the
//! tenant with each row, and the lease calls of [`LeaseStore`], which act on
//! runs by id for the engine that owns them.
//!
//! Each call that moves a run or a node forward is one atomic change: a
//! store backed by a database does it in one transaction, so a crash leaves
//! either the state before or the state after.

mod audit;
mod connection;
mod content;
mod dataset;
mod form;
mod memory;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::node::Wakeup;
use crate::run::{NodeExecution, Run, RunFilter, RunStatus, Wait};
use crate::workflow::WorkflowDefinition;

pub use audit::{AuditAction, AuditEntry, AuditFilter};
pub use connection::{ConnectionStore, StoredConnection};
pub use content::ContentStore;
pub use dataset::{DatasetFilter, DatasetRecord, DatasetStore};
pub use form::{FormStore, WakeFor};
pub use memory::InMemoryStore;

/// What went wrong in a store, in terms that do not depend on the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist for this tenant.
    #[error("{entity} {id} not found")]
    NotFound {
        /// What kind of record (`run`, `workflow`, ...).
        entity: &'static str,
        /// Its id.
        id: String,
    },
    /// The write would break a uniqueness rule (a version published twice,
    /// a wait key already in use).
    #[error("{entity} {id}: {message}")]
    Conflict {
        /// What kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// Which rule, and what to do.
        message: String,
    },
    /// The backend could not be reached or timed out; trying again may work.
    #[error("store unavailable: {message}")]
    Unavailable {
        /// What the backend said.
        message: String,
    },
    /// The writer's lease on the run is no longer current: another engine
    /// took the run over (this one stalled past its lease, or lost it), so
    /// the write was refused. The writer must stop driving the run.
    #[error(
        "run {run}: lease epoch {epoch} is no longer current; another engine took the run over \
         (this one stalled past its lease), so the write was refused and this engine must stop driving the run"
    )]
    Fenced {
        /// The run written to.
        run: RunId,
        /// The epoch the writer held.
        epoch: Epoch,
    },
    /// The write would move a node's record backwards: a lower attempt, or
    /// an ended attempt made running or waiting again. Node records only
    /// move forward; such a write comes from a stale execution.
    #[error("node execution {id}: {message}; node records only move forward")]
    Regressed {
        /// `run/node`.
        id: String,
        /// What the stored record holds and what the write would have made of it.
        message: String,
    },
    /// A stored record could not be read back.
    #[error("{entity} {id} is stored in a form that cannot be read: {message}")]
    Corrupt {
        /// What kind of record.
        entity: &'static str,
        /// Its id.
        id: String,
        /// What failed.
        message: String,
    },
}

/// The backend-neutral class of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// See [`StoreError::NotFound`].
    NotFound,
    /// See [`StoreError::Conflict`].
    Conflict,
    /// See [`StoreError::Unavailable`].
    Unavailable,
    /// See [`StoreError::Corrupt`].
    Corrupt,
    /// See [`StoreError::Fenced`].
    Fenced,
    /// See [`StoreError::Regressed`].
    Regressed,
}

impl StoreError {
    /// The class of error, whatever the backend.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            Self::NotFound { .. } => StoreErrorKind::NotFound,
            Self::Conflict { .. } => StoreErrorKind::Conflict,
            Self::Unavailable { .. } => StoreErrorKind::Unavailable,
            Self::Corrupt { .. } => StoreErrorKind::Corrupt,
            Self::Fenced { .. } => StoreErrorKind::Fenced,
            Self::Regressed { .. } => StoreErrorKind::Regressed,
        }
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.kind() == StoreErrorKind::Unavailable
    }

    /// Run `id` does not exist for the tenant.
    pub fn run_not_found(id: RunId) -> Self {
        Self::NotFound {
            entity: "run",
            id: id.to_string(),
        }
    }

    /// A write into run `id`, which has ended: refused, as every store must.
    pub fn run_ended(id: RunId) -> Self {
        Self::Conflict {
            entity: "run",
            id: id.to_string(),
            message: "the run has ended; an ended run takes no more writes".into(),
        }
    }

    /// Version `version` of `id` is stored already: versions are immutable;
    /// `fix` says what to do instead.
    pub fn version_exists(
        entity: &'static str,
        id: impl std::fmt::Display,
        version: u32,
        fix: &str,
    ) -> Self {
        Self::Conflict {
            entity,
            id: format!("{id}@{version}"),
            message: format!("this version exists already and versions are immutable; {fix}"),
        }
    }

    /// Refuses `new`, a write of a node whose stored record is `stored`,
    /// when it would move the node backwards: a lower attempt, or an ended
    /// attempt (succeeded, failed, skipped, cancelled) rewritten as running
    /// or waiting. `None` when the write moves forward or rewrites the same
    /// state.
    pub fn check_forward(stored: &NodeExecution, new: &NodeExecution) -> Option<Self> {
        Self::check_forward_parts(
            new.run_id,
            &new.node_id,
            (stored.status, stored.attempt),
            (new.status, new.attempt),
        )
    }

    /// [`StoreError::check_forward`] on the parts a store keeps: the
    /// stored and the new (status, attempt) of node `node` of run `run`.
    pub fn check_forward_parts(
        run: RunId,
        node: &NodeId,
        stored: (crate::run::NodeStatus, u32),
        new: (crate::run::NodeStatus, u32),
    ) -> Option<Self> {
        let message = if new.1 < stored.1 {
            format!(
                "attempt {} ({}) would replace attempt {} ({})",
                new.1,
                new.0.as_str(),
                stored.1,
                stored.0.as_str()
            )
        } else if new.1 == stored.1 && stored.0.is_ended() && !new.0.is_ended() {
            format!(
                "attempt {} ended {} and cannot be made {} again",
                new.1,
                stored.0.as_str(),
                new.0.as_str()
            )
        } else {
            return None;
        };
        Some(Self::Regressed {
            id: format!("{run}/{node}"),
            message,
        })
    }

    /// Refuses [`RunStore::end_run`] with a status other than failed or
    /// cancelled; `None` when `status` is one of those.
    pub fn check_end_status(id: RunId, status: RunStatus) -> Option<Self> {
        (!matches!(status, RunStatus::Failed | RunStatus::Cancelled)).then(|| Self::Conflict {
            entity: "run",
            id: id.to_string(),
            message: format!("end_run takes failed or cancelled, not {}", status.as_str()),
        })
    }
}

/// The result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The generation of a run's lease: the fencing token an engine carries on
/// every write into a run it drives.
///
/// A run's first lease has [`Epoch::FIRST`]. The epoch grows each time the
/// lease is taken by an engine that did not hold it: another engine taking
/// over an expired lease, or any engine taking a lease that was given up
/// (the run settled as waiting, then woke). An engine renewing or claiming
/// again the lease it still holds keeps the epoch. Stores refuse a write
/// carrying an epoch that is not the run's current one with
/// [`StoreError::Fenced`], so an engine that stalled past its lease (a long
/// pause, SIGSTOP, an overloaded host) cannot write into a run another
/// engine now drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// The epoch of a run's first lease.
    pub const FIRST: Epoch = Epoch(1);

    /// The epoch numbered `n` (as a store keeps it).
    pub const fn new(n: u64) -> Self {
        Self(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Workflow definitions and their immutable versions.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Stores `def` as version `def.version` of `def.id`.
    ///
    /// A version is immutable: storing one that exists is a
    /// [`StoreError::Conflict`].
    async fn insert_workflow(&self, tenant: &TenantId, def: &WorkflowDefinition)
        -> StoreResult<()>;

    /// Version `version` of workflow `id`, or its latest when `None`.
    async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> StoreResult<Option<WorkflowDefinition>>;

    /// The versions of `id`, ascending; empty when there is none.
    async fn workflow_versions(&self, tenant: &TenantId, id: &WorkflowId) -> StoreResult<Vec<u32>>;

    /// The latest version of every workflow, ordered by id.
    async fn workflows(&self, tenant: &TenantId) -> StoreResult<Vec<WorkflowDefinition>>;
}

/// Runs and the records of their nodes.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Stores a new run; its id must be new.
    async fn insert_run(&self, run: &Run) -> StoreResult<()>;

    /// The run `id`.
    async fn run(&self, tenant: &TenantId, id: RunId) -> StoreResult<Option<Run>>;

    /// Replaces the stored run with `run` (same id and tenant), for the
    /// engine holding the run's lease at `epoch`. A run that has ended takes
    /// no more writes: [`StoreError::Conflict`]; an epoch that is no longer
    /// the lease's: [`StoreError::Fenced`].
    async fn update_run(&self, run: &Run, epoch: Epoch) -> StoreResult<()>;

    /// Runs passing `filter`, newest first.
    async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> StoreResult<Vec<Run>>;

    /// Stores the record of one node in one run, replacing the previous
    /// record of that node, for the engine holding the run's lease at
    /// `epoch`. Refused with [`StoreError::Conflict`] once the run has
    /// ended, with [`StoreError::Fenced`] when `epoch` is no longer the
    /// lease's, and with [`StoreError::Regressed`] when the record would
    /// move the node backwards ([`StoreError::check_forward`]), so an
    /// engine that lost a run cannot write into it.
    async fn save_node_execution(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<()>;

    /// The records of the nodes of run `id`, in the order they were first saved.
    async fn node_executions(
        &self,
        tenant: &TenantId,
        id: RunId,
    ) -> StoreResult<Vec<NodeExecution>>;

    /// Ends run `id` as `status` ([`RunStatus::Failed`] or
    /// [`RunStatus::Cancelled`]) with `reason`, marks its running and waiting
    /// nodes cancelled and removes its waits, in one change. A run that
    /// already ended is returned unchanged; `None` when there is no such run.
    /// `epoch` is the lease of the engine ending a run it drives (refused
    /// with [`StoreError::Fenced`] when no longer current); `None` for an
    /// end that does not come from the run's driver, such as an operator's
    /// cancel, which ends the run whoever drives it.
    async fn end_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        status: RunStatus,
        reason: &str,
        at: DateTime<Utc>,
        epoch: Option<Epoch>,
    ) -> StoreResult<Option<Run>>;

    /// Stores a new run the way an engine starts one it drives at once: the
    /// run (its id must be new, as for [`RunStore::insert_run`]), the
    /// engine's lease on it (at [`Epoch::FIRST`]) and the audit entry of its
    /// start, in one change. On any error none of the three is stored.
    async fn start_run(&self, start: &RunStart<'_>) -> StoreResult<()>;

    /// Saves `steps`, node records its driver has not committed yet (each
    /// as [`RunStore::save_node_execution`] would, with its refusals),
    /// replaces the stored run with `run`, as [`RunStore::update_run`] does
    /// and with the same refusals, and gives up `owner`'s lease on it, all
    /// in one change: what a driver does when the run succeeds or waits.
    /// The lease keeps its epoch; whoever takes it next gets a greater one.
    async fn settle_run(
        &self,
        run: &Run,
        owner: &str,
        epoch: Epoch,
        steps: &[NodeExecution],
    ) -> StoreResult<()>;

    /// Moves a waiting run to another version of its workflow: its pinned
    /// version, and the node ids of its records and waits as
    /// `migration.renames` says, with the audit entry, in one change.
    /// Refused with [`StoreError::Conflict`] when the run is no longer
    /// waiting on `from_version` (a wake-up or another migration came
    /// first), and with [`StoreError::NotFound`] when there is no such run.
    async fn migrate_run(&self, migration: &RunMigration<'_>) -> StoreResult<()>;

    /// Every run, of any tenant, that an engine should be driving: status
    /// pending or running, or waiting with a node whose wait was taken but
    /// which was not executed again yet. Read at engine start-up.
    async fn runs_in_flight(&self) -> StoreResult<Vec<(TenantId, RunId)>>;
}

/// What [`RunStore::start_run`] stores: a run, the lease of the engine
/// that starts it, and the audit entry of its start.
#[derive(Debug, Clone, Copy)]
pub struct RunStart<'a> {
    /// The new run.
    pub run: &'a Run,
    /// The engine taking the run's lease (as [`LeaseStore::claim_run`]).
    pub owner: &'a str,
    /// When the lease expires unless renewed.
    pub lease_until: DateTime<Utc>,
    /// Who started the run, appended to the audit log.
    pub audit: &'a AuditEntry,
}

/// What [`RunStore::migrate_run`] changes.
#[derive(Debug, Clone, Copy)]
pub struct RunMigration<'a> {
    /// The run's tenant.
    pub tenant: &'a TenantId,
    /// The waiting run.
    pub run: RunId,
    /// The version it waits on now.
    pub from_version: u32,
    /// The version it moves to.
    pub to_version: u32,
    /// Node ids that change, old to new; no new id is also an old one.
    pub renames: &'a [(NodeId, NodeId)],
    /// The migration's entry in the audit log.
    pub audit: &'a AuditEntry,
}

impl StoreError {
    /// A migration of run `id`, which no longer waits on `version`.
    pub fn not_waiting_on(id: RunId, version: u32) -> Self {
        Self::Conflict {
            entity: "run",
            id: id.to_string(),
            message: format!("no longer waiting on version {version}"),
        }
    }
}

/// Which runs [`LeaseStore::claim_runs`] takes, and for whom.
#[derive(Debug, Clone, Copy)]
pub struct RunClaim<'a> {
    /// The engine taking the leases.
    pub owner: &'a str,
    /// When they expire unless renewed.
    pub until: DateTime<Utc>,
    /// Leases that ran out before this are free.
    pub now: DateTime<Utc>,
    /// At most this many runs.
    pub limit: usize,
    /// At most this many runs of any one tenant, so that one tenant's
    /// backlog does not fill the claim.
    pub per_tenant: usize,
    /// No runs of these tenants (the caller's quota for them is full).
    pub skip: &'a [TenantId],
}

/// The lease an engine asks for with a write that ends a wait
/// ([`WaitStore::deliver`]), as [`LeaseStore::claim_run`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    /// The engine taking the lease.
    pub owner: &'a str,
    /// When it expires unless renewed.
    pub until: DateTime<Utc>,
    /// A lease that ran out before this is free.
    pub now: DateTime<Utc>,
}

/// Who delivered a wake-up and when: [`WaitStore::deliver`] writes the
/// audit entry of the delivery in the same change, so that no resume
/// happens without its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAudit {
    /// When.
    pub at: DateTime<Utc>,
    /// Who, when the caller said (a user id, an API key's name).
    pub actor: Option<String>,
}

impl DeliveryAudit {
    /// The entry of `wakeup` delivered for `tenant`: the run resumed, when
    /// the delivery ended its `wait`; else the wake-up held, with when it
    /// expires.
    pub fn entry(
        &self,
        tenant: &TenantId,
        wakeup: &HeldWakeup,
        ended: Option<&Wait>,
    ) -> AuditEntry {
        match ended {
            Some(wait) => self.resumed(tenant, wait, &wakeup.key),
            None => self.record(
                tenant,
                "wake-up",
                wakeup.key.clone(),
                serde_json::json!({ "held": true, "expiresAt": wakeup.expires_at }),
            ),
        }
    }

    /// The entry of `wait`, on `key`, ended: its run resumed.
    pub fn resumed(&self, tenant: &TenantId, wait: &Wait, key: &str) -> AuditEntry {
        self.record(
            tenant,
            "run",
            wait.run_id.to_string(),
            serde_json::json!({ "node": wait.node_id, "key": key }),
        )
    }

    fn record(
        &self,
        tenant: &TenantId,
        entity_type: &str,
        entity_id: String,
        details: serde_json::Value,
    ) -> AuditEntry {
        AuditEntry {
            tenant: tenant.clone(),
            at: self.at,
            actor: self.actor.clone(),
            action: AuditAction::Resume,
            entity_type: entity_type.to_string(),
            entity_id,
            details,
        }
    }
}

/// A wait that [`WaitStore::deliver`] ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Woken {
    /// The wait, as it was stored.
    pub wait: Wait,
    /// The epoch of the run's lease, taken for the deliverer in the same
    /// change; `None` when none was asked for or another engine holds it.
    pub epoch: Option<Epoch>,
}

/// A wake-up that came for a key no node waited on yet: a form answer
/// arriving while its node is still suspending, a child run ending before
/// its parent's node suspended, [`Engine::resume`](crate::Engine::resume)
/// called early. The store keeps it, tenant-scoped, until a node suspends
/// on the key (which then continues at once: [`WaitStore::suspend_node`])
/// or until it expires; an expired one no node takes any more, and it stays
/// listed for the host ([`WaitStore::held_wakeups`]) until discarded.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldWakeup {
    /// The key a node is to wait on.
    pub key: String,
    /// What the node gets as the event's payload.
    pub payload: serde_json::Value,
    /// When it came.
    pub received_at: DateTime<Utc>,
    /// When it expires unless a node took it.
    pub expires_at: DateTime<Utc>,
    /// Whether it expired ([`WaitStore::expire_wakeups`]).
    #[serde(default)]
    pub expired: bool,
}

impl HeldWakeup {
    /// A wake-up on `key` with `payload`, come at `at`, kept for `ttl`.
    pub fn new(
        key: impl Into<String>,
        payload: serde_json::Value,
        at: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Self {
        Self {
            key: key.into(),
            payload,
            received_at: at,
            expires_at: at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX),
            expired: false,
        }
    }

    /// What a node that takes it sees.
    pub fn wakeup(&self) -> Wakeup {
        Wakeup::Event {
            key: self.key.clone(),
            payload: self.payload.clone(),
        }
    }
}

/// Durable waits: suspended nodes, their event keys and timers, and the
/// wake-ups that came before their wait.
#[async_trait]
pub trait WaitStore: Send + Sync {
    /// Saves `execution` (status waiting, `wait` set) and registers its wait,
    /// in one change, with the refusals of [`RunStore::save_node_execution`]
    /// for `epoch`. A key already waited on by another node of the tenant
    /// is a [`StoreError::Conflict`].
    ///
    /// When a wake-up is held for the key (not expired), the suspension
    /// takes it instead, in the same change: the node's record is saved
    /// waiting with `resumed` set (as [`WaitStore::take_wait`] leaves it),
    /// no wait is registered, the held wake-up is removed, and the answer
    /// is what the node is to continue with at once.
    async fn suspend_node(
        &self,
        tenant: &TenantId,
        execution: &NodeExecution,
        epoch: Epoch,
    ) -> StoreResult<Option<crate::node::Resumed>>;

    /// Delivers `wakeup`: when a wait on its key is stored, ends it as
    /// [`WaitStore::take_wait`] does with an event carrying its payload and
    /// answers it; otherwise holds `wakeup` for a node that will suspend on
    /// the key, and answers `None`. A wake-up already held (not expired) on
    /// the key is kept and `wakeup` dropped: the first one wakes the node.
    /// Taking or holding, and the check between them, are one change, so a
    /// wake-up racing a suspension on the same key is never lost.
    ///
    /// With `lease`, a wait ended also takes its run's lease for
    /// `lease.owner` in the same change, as [`LeaseStore::claim_run`] would:
    /// the engine that delivers drives the run on without a claim of its
    /// own. [`Woken::epoch`] is `None` when another engine holds the lease.
    ///
    /// With `audit`, the delivery's audit entry
    /// ([`DeliveryAudit::entry`]) is written in the same change.
    async fn deliver(
        &self,
        tenant: &TenantId,
        wakeup: &HeldWakeup,
        lease: Option<LeaseRequest<'_>>,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Woken>>;

    /// The wake-ups held for `tenant`, pending and expired, oldest first.
    async fn held_wakeups(&self, tenant: &TenantId) -> StoreResult<Vec<HeldWakeup>>;

    /// Marks the held wake-ups of any tenant that expire at or before
    /// `now` expired, so that no suspension takes them, and answers them
    /// (at most `limit`, earliest first).
    async fn expire_wakeups(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, HeldWakeup)>>;

    /// Removes the wake-up held on `key`, pending or expired; whether there
    /// was one.
    async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> StoreResult<bool>;

    /// Ends the wait on `key`, in one change: removes it, records `wakeup` on
    /// the node's record (`resumed`, with the wait's state) and marks the run
    /// running. Of two callers with the same key, one gets the wait and the
    /// other `None`.
    ///
    /// With `audit`, a wait ended gets its audit entry
    /// ([`DeliveryAudit::resumed`]) in the same change; nothing is written
    /// when no wait was taken.
    async fn take_wait(
        &self,
        tenant: &TenantId,
        key: &str,
        wakeup: Wakeup,
        audit: Option<&DeliveryAudit>,
    ) -> StoreResult<Option<Wait>>;

    /// Waits of any tenant whose time is at or before `now`, earliest first.
    async fn due_waits(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TenantId, Wait)>>;

    /// The earliest wake-up time of any wait of any tenant.
    async fn next_due(&self) -> StoreResult<Option<DateTime<Utc>>>;
}

/// Leases on runs, so that several engines on one store never drive the
/// same run at once: an engine drives a run only while it holds the run's
/// lease, renews it while it works, and gives it up when the run settles. A
/// lease of an engine that died expires, and another engine claims the run.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease on run `id` for `owner` until `until`, if it is free
    /// (never taken, or given up), expired at `now`, or already `owner`'s.
    /// Returns the lease's epoch when `owner` holds it, `None` when another
    /// engine does or there is no such run. The epoch grows when the lease
    /// passes to `owner` from another engine or from being given up (see
    /// [`Epoch`]); it stays when `owner` held it already.
    async fn claim_run(
        &self,
        tenant: &TenantId,
        id: RunId,
        owner: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Epoch>>;

    /// Takes for `claim.owner` the leases of runs in flight (as
    /// [`RunStore::runs_in_flight`] lists them) whose lease is free, expired
    /// at `claim.now`, or the owner's, oldest first, across tenants (epochs
    /// grow as for [`LeaseStore::claim_run`]): at most
    /// `claim.limit`, at most `claim.per_tenant` of one tenant, none of the
    /// tenants in `claim.skip`. Concurrent callers never get the same run.
    async fn claim_runs(&self, claim: &RunClaim<'_>) -> StoreResult<Vec<(TenantId, RunId)>>;

    /// Extends `owner`'s leases on `runs` to `until`; returns the runs whose
    /// lease another engine holds now (taken over: `owner` lost it). A lease
    /// `owner` gave up meanwhile (its run settled) is neither renewed nor
    /// lost.
    async fn renew_leases(
        &self,
        owner: &str,
        runs: &[RunId],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunId>>;

    /// Gives up `owner`'s lease on run `id`, if it holds it. The lease keeps
    /// its epoch: the next engine to take it gets a greater one.
    async fn release_run(&self, id: RunId, owner: &str) -> StoreResult<()>;
}

/// The audit log: who did what to which record.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry.
    async fn append_audit(&self, entry: &AuditEntry) -> StoreResult<()>;

    /// Entries passing `filter`, newest first.
    async fn audit_log(
        &self,
        tenant: &TenantId,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEntry>>;
}

/// What the engine persists through: workflows, runs, waits, leases and
/// the audit log, 29 methods in five traits. A backend for the engine
/// implements these and writes `impl Store for MyStore {}`.
///
/// Forms ([`FormStore`]), datasets ([`DatasetStore`]), connections
/// ([`ConnectionStore`]) and large values ([`ContentStore`]) are traits of
/// their own, which a backend implements when it keeps them; the services
/// using them take them apart (`Forms::new(Arc<dyn FormStore>, ..)`). A
/// backend keeping everything is a [`Backend`].
pub trait Store: WorkflowStore + RunStore + WaitStore + LeaseStore + AuditStore {
    /// Where this backend keeps large values, if it does: the engine moves
    /// long strings there ([`EngineBuilder::content_threshold`]) and nodes
    /// read and write through it ([`NodeContext::contents`]). `None`, the
    /// default, for a backend that keeps none: an engine on it refuses a
    /// content threshold, and a node asking for contents is told so.
    ///
    /// [`EngineBuilder::content_threshold`]: crate::EngineBuilder::content_threshold
    /// [`NodeContext::contents`]: crate::NodeContext::contents
    fn content_store(&self) -> Option<Arc<dyn ContentStore>> {
        None
    }
}

/// Every store trait at once: a backend that keeps everything, as the
/// in-memory, SQLite and Postgres stores do. A host holding one handle,
/// `Arc<dyn Backend>`, passes it as each trait it is asked for
/// (`Arc<dyn Backend>` coerces to `Arc<dyn Store>`, `Arc<dyn FormStore>`
/// and the others).
pub trait Backend: Store + FormStore + DatasetStore + ConnectionStore + ContentStore {}

impl<T> Backend for T where T: Store + FormStore + DatasetStore + ConnectionStore + ContentStore {}

const _: () = {
    // The engine holds `Arc<dyn Store>`, hosts `Arc<dyn Backend>`: the
    // traits must stay object safe.
    fn _assert_object_safe(_: &dyn Store, _: &dyn Backend) {}
};
