//! The engine: publishes workflows, starts and drives runs, resumes waits.

mod active;
mod actor;
pub use actor::{acting_as, current_actor};
mod attempt;
mod builder;
mod driver;
mod durable;
#[cfg(feature = "testing")]
pub(crate) mod hooks;
mod migrate;
pub use migrate::Migration;
mod rerun;
mod start;
pub(crate) use crate::node::stream::{Inlet, Outlet};
pub use rerun::{RerunBatch, RerunFrom, RerunReport, RerunVersion};
mod timers;
mod watch;

use active::Active;
use builder::Limits;
pub use builder::{
    EngineBuilder, DEFAULT_EDGE_CAPACITY, DEFAULT_HELD_WAKEUP_TTL, DEFAULT_MAX_PORT_ITEMS,
};
use start::keyed_run_id;

/// Keyed by ids the engine made: a fast hash, looked up on every step.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::item::items_from_value;
use crate::node::Wakeup;
use crate::registry::NodeRegistry;
use crate::run::{PreparedRun, Run, RunDetail, RunFilter, RunParent, RunStatus};
use crate::store::{
    AuditAction, AuditEntry, ContentStore, DeliveryAudit, Epoch, HeldWakeup, InMemoryStore,
    LeaseRequest, RunStart, Store, StoreError, StoreErrorKind, StoreResult, Woken,
};
use crate::telemetry;
use crate::validate::{validate, ValidatedWorkflow, ValidationError};
use crate::workflow::{RetryPolicy, WorkflowDefinition};

/// Runs workflows inside the host's service.
///
/// Cheap to clone: clones share one engine. Build it with [`Engine::builder`]
/// on a tokio runtime.
///
/// ```
/// # use concertmaster_core::*;
/// # use concertmaster_core::{node::NodeCategory, workflow::NodeSpec};
/// # use async_trait::async_trait;
/// # struct Hello;
/// # #[async_trait]
/// # impl Node for Hello {
/// #     async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
/// #         Ok(NodeOutcome::Done(input))
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut registry = NodeRegistry::new();
/// registry.register_node(NodeDescriptor::new("hello", NodeCategory::Trigger), Hello)?;
/// let engine = Engine::builder().registry(registry).build().await?;
///
/// let tenant = TenantId::new("acme");
/// let workflow = engine
///     .publish(&tenant, WorkflowDefinition::new("greet", "Greet").node(NodeSpec::new("hi", "hello")))
///     .await?;
/// let run = engine.start(&workflow, serde_json::json!({ "name": "Ada" })).await?;
/// let run = engine.settled(&tenant, run).await?;
/// assert_eq!(run.status, RunStatus::Succeeded);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Arc<dyn Store>,
    /// The store's content store, if it keeps content.
    contents: Option<Arc<dyn ContentStore>>,
    registry: Arc<NodeRegistry>,
    clock: Arc<dyn Clock>,
    limits: Limits,
    node_permits: Arc<Semaphore>,
    workflows: Mutex<HashMap<(TenantId, WorkflowId, u32), ValidatedWorkflow>>,
    active: Mutex<Active>,
    /// Who waits for which run (`Engine::settled`, `Engine::finished`).
    watchers: watch::Watchers,
    timer_wake: Arc<Notify>,
    shutdown: CancellationToken,
    /// This engine's name on the leases it holds.
    owner: String,
    #[cfg(feature = "testing")]
    pub(crate) hooks: hooks::Hooks,
    /// Set when a run was left in the store for want of room; the
    /// background loop then claims work as soon as a driver retires.
    backlog: std::sync::atomic::AtomicBool,
}

/// What a run's driver is told from outside.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// A run this engine has just stored: drive it from this copy rather
    /// than read it back. `leased`: it was stored running, with this
    /// engine's lease, and has no node records yet.
    Start { run: Box<Run>, leased: bool },
    /// A wait of the run ended: look for nodes to execute again.
    Wake,
    /// A wait of the run ended through this engine, which took the run's
    /// lease at `epoch` in the same change: a driver started for it drives
    /// without a claim. A driver already running gets a `Wake`: its run
    /// may have given the lease up since.
    Leased { epoch: Epoch },
    /// Stop the run.
    Cancel { reason: String },
    /// This engine lost the run's lease: stop driving it, write nothing.
    Abandon,
}

/// What [`Engine::resume`] did with a wake-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// A node of this run waited on the key: it continues.
    Resumed(RunId),
    /// No node waited on the key yet: the wake-up is held for the first
    /// that suspends on it (or one held before is kept).
    Held,
}

impl Delivery {
    /// The run that continues, when a node waited.
    pub fn run(&self) -> Option<RunId> {
        match self {
            Self::Resumed(run) => Some(*run),
            Self::Held => None,
        }
    }
}

/// A workflow version that passed validation and is stored: what runs start from.
#[derive(Debug, Clone)]
pub struct PublishedWorkflow {
    tenant: TenantId,
    workflow: ValidatedWorkflow,
}

impl PublishedWorkflow {
    /// The tenant that owns it.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The workflow's id.
    pub fn id(&self) -> &WorkflowId {
        &self.workflow.definition.id
    }

    /// The version runs started from it are pinned to.
    pub fn version(&self) -> u32 {
        self.workflow.definition.version
    }

    /// The definition.
    pub fn definition(&self) -> &WorkflowDefinition {
        &self.workflow.definition
    }
}

impl Engine {
    /// The node types this engine runs: the editor palette.
    pub fn registry(&self) -> &NodeRegistry {
        &self.inner.registry
    }

    /// The content of `tenant` in the engine's store: large values passed
    /// by reference, written and read a chunk at a time (each call answers
    /// [`ContentError::NotKept`](crate::content::ContentError::NotKept) when
    /// the store keeps no content).
    pub fn contents(&self, tenant: &TenantId) -> crate::content::Contents {
        crate::content::Contents::of(self.inner.contents.clone(), tenant.clone())
    }

    /// The store this engine persists through.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Checks `def` against this engine's node types without storing it.
    pub fn validate(&self, def: &WorkflowDefinition) -> Result<ValidatedWorkflow, ValidationError> {
        validate(def, &self.inner.registry)
    }

    /// Validates `def` and stores it as the next version of its workflow
    /// (1 for a new one); the version number in `def` is ignored. Earlier
    /// versions, and runs pinned to them, are untouched.
    #[tracing::instrument(name = "publish", skip_all, fields(tenant = %tenant, workflow = %def.id))]
    pub async fn publish(
        &self,
        tenant: &TenantId,
        mut def: WorkflowDefinition,
    ) -> Result<PublishedWorkflow> {
        match &def.tenant {
            Some(found) if found != tenant => {
                return Err(Error::TenantMismatch {
                    id: def.id.clone(),
                    tenant: tenant.clone(),
                    found: found.clone(),
                })
            }
            _ => def.tenant = Some(tenant.clone()),
        }
        let store = &self.inner.store;
        let mut attempts_left = 3;
        let workflow = loop {
            let latest = store
                .workflow_versions(tenant, &def.id)
                .await?
                .last()
                .copied()
                .unwrap_or(0);
            def.version = latest + 1;
            let workflow = validate(&def, &self.inner.registry)?;
            match store.insert_workflow(tenant, &def).await {
                Ok(()) => break workflow,
                // Another publisher took this version number first: take the next.
                Err(err) if err.kind() == StoreErrorKind::Conflict && attempts_left > 1 => {
                    attempts_left -= 1
                }
                Err(err) => return Err(err.into()),
            }
        };
        self.audit(
            tenant,
            AuditAction::Create,
            "workflow",
            format!("{}@{}", def.id, def.version),
            Value::Null,
        )
        .await;
        self.inner.cache_workflow(tenant, &workflow);
        Ok(PublishedWorkflow {
            tenant: tenant.clone(),
            workflow,
        })
    }

    /// Version `version` of workflow `id` (the latest when `None`), ready to start.
    pub async fn workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<PublishedWorkflow> {
        let workflow = self.inner.load_workflow(tenant, id, version).await?;
        Ok(PublishedWorkflow {
            tenant: tenant.clone(),
            workflow,
        })
    }

    /// The published versions of workflow `id`, ascending.
    pub async fn versions(&self, tenant: &TenantId, id: &WorkflowId) -> Result<Vec<u32>> {
        Ok(self.inner.store.workflow_versions(tenant, id).await?)
    }

    /// Drives run `id` of `tenant` here, unless another engine already
    /// does: for a run the host stored itself ([`Engine::prepare_run`]),
    /// once its transaction has committed. Returns whether this engine
    /// drives it (not when another does, or this one already drives
    /// `max_active_runs`: the run then waits for the first with room);
    /// [`Error::RunNotFound`] when no such run is stored (the host's
    /// transaction rolled back).
    pub async fn pick_up(&self, tenant: &TenantId, id: RunId) -> Result<bool> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        if self.inner.is_active(id) {
            return Ok(true);
        }
        let now = self.inner.clock.now();
        let until = self.inner.lease_until(now);
        let claimed = self
            .inner
            .store
            .claim_run(tenant, id, &self.inner.owner, until, now)
            .await?;
        if claimed.is_none() {
            return match self.inner.store.run(tenant, id).await? {
                Some(_) => Ok(false),
                None => Err(Error::RunNotFound {
                    tenant: tenant.clone(),
                    id,
                }),
            };
        }
        let taken = self.inner.signal(tenant.clone(), id, Signal::Wake);
        if !taken {
            // Full: the run waits for another engine, or this one with room.
            self.inner.give_back_lease(id).await;
        }
        Ok(taken)
    }

    /// Delivers an event on `key` with `payload`. When a node waits on
    /// `key`, its wait ends and it is executed again, seeing the payload in
    /// [`NodeContext::resumed`](crate::NodeContext::resumed):
    /// [`Delivery::Resumed`]. When none does yet (the node is still on its
    /// way to suspending: a webhook answering faster than the workflow
    /// asks), the wake-up is held in the store, tenant-scoped, and the
    /// first node to suspend on the key continues with it at once:
    /// [`Delivery::Held`]. A held wake-up expires after
    /// [`EngineBuilder::held_wakeup_ttl`] (7 days) and is listed by
    /// [`Engine::held_wakeups`] until discarded; one already held on the
    /// key is kept, and this one dropped. Use
    /// [`resume_if_waiting`](Self::resume_if_waiting) for a wake-up that
    /// only matters to a node waiting now.
    #[tracing::instrument(name = "resume", skip(self, payload), fields(tenant = %tenant))]
    pub async fn resume(&self, tenant: &TenantId, key: &str, payload: Value) -> Result<Delivery> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let now = self.inner.clock.now();
        let held = HeldWakeup::new(key, payload, now, self.inner.limits.held_wakeup_ttl);
        let lease = self.inner.lease_request(now);
        // Recorded with the delivery, in the same change.
        let audit = DeliveryAudit {
            at: now,
            actor: actor::current_actor(),
        };
        let delivered = self
            .inner
            .store
            .deliver(tenant, &held, Some(lease), Some(&audit));
        let Some(woken) = delivered.await? else {
            return Ok(Delivery::Held);
        };
        self.inner.drive_woken(tenant.clone(), &woken).await;
        Ok(Delivery::Resumed(woken.wait.run_id))
    }

    /// Ends the wait on `key` with `payload`, as [`resume`](Self::resume)
    /// does, only when a node waits on it now; answers its run, or `None`
    /// (nothing is held).
    pub async fn resume_if_waiting(
        &self,
        tenant: &TenantId,
        key: &str,
        payload: Value,
    ) -> Result<Option<RunId>> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let wakeup = Wakeup::Event {
            key: key.to_string(),
            payload,
        };
        // Recorded with the wait's end, in the same change.
        let audit = DeliveryAudit {
            at: self.inner.clock.now(),
            actor: actor::current_actor(),
        };
        let taken = self
            .inner
            .store
            .take_wait(tenant, key, wakeup, Some(&audit));
        let Some(wait) = taken.await? else {
            return Ok(None);
        };
        self.inner.signal(tenant.clone(), wait.run_id, Signal::Wake);
        Ok(Some(wait.run_id))
    }

    /// Drives run `id` here after a store call of the host's or a service's
    /// ended one of its waits itself (a form answer stored with its
    /// wake-up: `FormStore::insert_response`). Should the process stop
    /// first, the engine's recovery sweep drives it.
    pub fn woken(&self, tenant: &TenantId, id: RunId) {
        self.inner.signal(tenant.clone(), id, Signal::Wake);
    }

    /// The wake-ups held for `tenant`: come before any node waited on
    /// their key, pending or expired (see [`Engine::resume`]), oldest first.
    pub async fn held_wakeups(&self, tenant: &TenantId) -> Result<Vec<HeldWakeup>> {
        Ok(self.inner.store.held_wakeups(tenant).await?)
    }

    /// Discards the wake-up held on `key`; whether there was one.
    pub async fn discard_wakeup(&self, tenant: &TenantId, key: &str) -> Result<bool> {
        let discarded = self.inner.store.discard_wakeup(tenant, key).await?;
        if discarded {
            self.audit(
                tenant,
                AuditAction::Delete,
                "wake-up",
                key.to_string(),
                serde_json::json!({}),
            )
            .await;
        }
        Ok(discarded)
    }

    /// Cancels run `id`: its executing nodes see their cancellation token
    /// fire and are stopped, its waits end, and its child runs still open
    /// (sub-workflows, [`Engine::start_child`]) are cancelled with it, to
    /// any depth. Returns the run once it stopped; a run that had already
    /// ended is returned as it was. Cancelling a cancelled run again
    /// cancels children that are still open, such as those left when the
    /// process stopped between the parent and its children.
    #[tracing::instrument(name = "cancel", skip(self), fields(tenant = %tenant, run = %id))]
    pub async fn cancel(&self, tenant: &TenantId, id: RunId, reason: &str) -> Result<Run> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::ShutDown);
        }
        let mut run = self.get_run(tenant, id).await?;
        if run.status.is_terminal() && run.status != RunStatus::Cancelled {
            return Ok(run);
        }
        if !run.status.is_terminal() {
            self.inner.signal(
                tenant.clone(),
                id,
                Signal::Cancel {
                    reason: reason.to_string(),
                },
            );
            self.audit(
                tenant,
                AuditAction::Cancel,
                "run",
                id.to_string(),
                serde_json::json!({ "reason": reason }),
            )
            .await;
            run = self.finished(tenant, id).await?;
        }
        // The parent first: once it has stopped, no node of it starts
        // another child.
        let open =
            RunFilter::statuses([RunStatus::Pending, RunStatus::Running, RunStatus::Waiting])
                .children_of(id)
                .limit(usize::MAX >> 1);
        let reason = format!("parent run {id} was cancelled: {reason}");
        for child in self.inner.store.runs(tenant, &open).await? {
            Box::pin(self.cancel(tenant, child.id, &reason)).await?;
        }
        Ok(run)
    }

    /// Waits until run `id` stops making progress on its own: it ended, or
    /// every unfinished node waits for an event or a time.
    pub async fn settled(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.wait_for(tenant, id, |run| !run.status.is_in_flight())
            .await
    }

    /// Waits until run `id` has ended (succeeded, failed or cancelled),
    /// through any waits it has.
    pub async fn finished(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.wait_for(tenant, id, |run| run.status.is_terminal())
            .await
    }

    async fn wait_for(
        &self,
        tenant: &TenantId,
        id: RunId,
        done: impl Fn(&Run) -> bool,
    ) -> Result<Run> {
        // A run driven here announces its stored state when its driver
        // retires, so waiting on it costs no store read. Watched first: a
        // driver seen active now retires after, and its event comes.
        let mut watch = self.inner.watchers.watch(id);
        let mut announced: Option<Arc<Run>> = None;
        loop {
            // A run whose driver is still here is not done moving: its
            // retirement will be announced, with the run as stored, so
            // reading the store now would only be read again.
            if !self.inner.is_active(id) {
                // An announced run that is not done yet may be stale: the
                // run can have moved again before the watch was renewed.
                let run = match announced.take().filter(|run| done(run)) {
                    Some(run) => Arc::unwrap_or_clone(run),
                    None => self.get_run(tenant, id).await?,
                };
                if done(&run) && !self.inner.is_active(id) {
                    return Ok(run);
                }
            }
            let event = tokio::select! {
                event = watch.event() => event,
                // A stopped engine drives nothing: the run will not move here.
                () = self.inner.shutdown.cancelled() => return Err(Error::ShutDown),
            };
            // Watch again before looking at the run, for the same reason.
            watch = self.inner.watchers.watch(id);
            announced = event.stored.filter(|run| run.tenant == *tenant);
        }
    }

    /// Run `id` with the record of each of its nodes, in workflow order.
    pub async fn run(&self, tenant: &TenantId, id: RunId) -> Result<RunDetail> {
        let run = self.get_run(tenant, id).await?;
        let mut nodes = self.inner.store.node_executions(tenant, id).await?;
        if let Ok(workflow) = self
            .inner
            .load_workflow(tenant, &run.workflow_id, Some(run.workflow_version))
            .await
        {
            let order = &workflow.plan.index;
            nodes.sort_by_key(|n| order.get(&n.node_id).copied().unwrap_or(usize::MAX));
        }
        Ok(RunDetail { run, nodes })
    }

    /// Runs passing `filter`, newest first.
    pub async fn runs(&self, tenant: &TenantId, filter: &RunFilter) -> Result<Vec<Run>> {
        Ok(self.inner.store.runs(tenant, filter).await?)
    }

    /// Wakes every node whose time has come. The engine does this on its own
    /// every poll interval; call it after advancing a manual clock.
    pub async fn fire_due_timers(&self) -> Result<usize> {
        self.inner.fire_due_timers().await
    }

    /// Stops the engine at once: timers stop and runs stop being driven
    /// where they are, as if the process ended. What was committed stays
    /// committed; an engine built later on the same store resumes the runs.
    /// Calls that would wait on this engine afterwards fail with
    /// [`Error::ShutDown`].
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let runs = std::mem::take(&mut *self.inner.active());
        for run in runs.runs.into_values() {
            run.task.abort();
        }
        self.inner.timer_wake.notify_one();
    }

    async fn get_run(&self, tenant: &TenantId, id: RunId) -> Result<Run> {
        self.inner
            .store
            .run(tenant, id)
            .await?
            .ok_or_else(|| Error::RunNotFound {
                tenant: tenant.clone(),
                id,
            })
    }

    async fn audit(
        &self,
        tenant: &TenantId,
        action: AuditAction,
        entity_type: &str,
        entity_id: String,
        details: Value,
    ) {
        let at = self.inner.clock.now();
        self.append_audit(audit_entry(
            tenant,
            at,
            action,
            entity_type,
            entity_id,
            details,
        ))
        .await;
    }

    async fn append_audit(&self, entry: AuditEntry) {
        // The action is committed by now; failing the call would invite a
        // retry that repeats it. The failure is reported instead.
        if let Err(err) = self.inner.store.append_audit(&entry).await {
            tracing::error!(
                error = %err,
                action = ?entry.action,
                entity_type = %entry.entity_type,
                entity_id = %entry.entity_id,
                "audit entry could not be stored"
            );
        }
    }
}

/// An audit entry by the current actor.
fn audit_entry(
    tenant: &TenantId,
    at: chrono::DateTime<chrono::Utc>,
    action: AuditAction,
    entity_type: &str,
    entity_id: String,
    details: Value,
) -> AuditEntry {
    AuditEntry {
        tenant: tenant.clone(),
        at,
        actor: actor::current_actor(),
        action,
        entity_type: entity_type.to_string(),
        entity_id,
        details,
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("registry", &self.inner.registry)
            .field("limits", &self.inner.limits)
            .field("active_runs", &self.inner.active().len())
            .finish()
    }
}

impl Inner {
    /// Keeps `workflow` for `tenant`'s runs, with the tenant's node metric
    /// keys, unless a copy is kept already.
    fn cache_workflow(&self, tenant: &TenantId, workflow: &ValidatedWorkflow) {
        self.with_cached_workflow(tenant, workflow, |_| ());
    }

    /// `cache_workflow`, then `read` of the copy kept (the one there
    /// already, if any). Starting a run caches its workflow every time:
    /// only a caller that wants the copy pays for cloning it.
    fn with_cached_workflow<R>(
        &self,
        tenant: &TenantId,
        workflow: &ValidatedWorkflow,
        read: impl FnOnce(&ValidatedWorkflow) -> R,
    ) -> R {
        let key = (
            tenant.clone(),
            workflow.definition.id.clone(),
            workflow.definition.version,
        );
        let mut cache = self
            .workflows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        read(cache.entry(key).or_insert_with(|| {
            let mut cached = workflow.clone();
            cached.node_timings = telemetry::node_duration_keys(&workflow.plan.types, tenant);
            cached
        }))
    }

    pub(crate) async fn load_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<ValidatedWorkflow> {
        if let Some(v) = version {
            let cached = self
                .workflows
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&(tenant.clone(), id.clone(), v))
                .cloned();
            if let Some(workflow) = cached {
                return Ok(workflow);
            }
        }
        let def = self
            .store
            .workflow(tenant, id, version)
            .await?
            .ok_or_else(|| Error::WorkflowNotFound {
                tenant: tenant.clone(),
                id: id.clone(),
                version,
            })?;
        let workflow = validate(&def, &self.registry)?;
        Ok(self.with_cached_workflow(tenant, &workflow, ValidatedWorkflow::clone))
    }
}
