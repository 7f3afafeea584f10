//! The engine's error type.

use crate::ids::{NodeId, RunId, TenantId, WorkflowId};
use crate::registry::RegistryError;
use crate::store::StoreError;
use crate::validate::ValidationError;
use crate::workflow::DefinitionError;

/// Everything an [`Engine`](crate::Engine) call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Workflow JSON could not be read.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// The workflow is invalid; every problem is listed.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A node type could not be registered.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No such workflow (or version) for this tenant.
    #[error("workflow {id}{} not found for tenant {tenant}; publish it first", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    WorkflowNotFound {
        /// The tenant asked for.
        tenant: TenantId,
        /// The workflow asked for.
        id: WorkflowId,
        /// The version asked for; `None` for the latest.
        version: Option<u32>,
    },
    /// The definition names another tenant than the one publishing it.
    #[error("workflow {id} belongs to tenant {found}, not {tenant}; publish it as its own tenant or clear its tenant field")]
    TenantMismatch {
        /// The workflow.
        id: WorkflowId,
        /// The tenant publishing.
        tenant: TenantId,
        /// The tenant in the definition.
        found: TenantId,
    },
    /// A run cannot be re-run as asked ([`Engine::rerun`](crate::Engine::rerun)).
    #[error("run {run} cannot be re-run: {reason}")]
    CannotRerun {
        /// The run asked to be re-run.
        run: RunId,
        /// Why: it has not ended, no node failed, a node named is not in
        /// the workflow version chosen.
        reason: String,
    },
    /// A waiting run cannot move to the version asked
    /// ([`Engine::migrate`](crate::Engine::migrate)); nothing was changed.
    #[error("run {run} cannot move to version {version}: {}", problems.join("; "))]
    CannotMigrate {
        /// The run asked to move.
        run: RunId,
        /// The version asked for.
        version: u32,
        /// Every reason found: the run is not waiting, a waiting node has
        /// no counterpart of the same type, a node before a waiting one has
        /// not run, a rename names a node neither version has.
        problems: Vec<String>,
    },
    /// No such run for this tenant.
    #[error("run {id} not found for tenant {tenant}")]
    RunNotFound {
        /// The tenant asked for.
        tenant: TenantId,
        /// The run asked for.
        id: RunId,
    },
    /// Trigger data that is not an object or an array of objects.
    #[error("trigger data for workflow {workflow}: expected a JSON object or an array of objects, got {found}")]
    InvalidTrigger {
        /// The workflow started.
        workflow: WorkflowId,
        /// What was given instead.
        found: String,
    },
    /// A run was started with more trigger items than the engine holds in
    /// memory on one port ([`EngineBuilder::max_port_items`](crate::EngineBuilder::max_port_items)).
    #[error("trigger data for workflow {workflow}: {items} items, more than the {limit} one port holds in memory; raise EngineBuilder::max_port_items, or pass them by reference (ItemWriter) as one item")]
    TooManyItems {
        /// The workflow started.
        workflow: WorkflowId,
        /// How many items were given.
        items: usize,
        /// The engine's limit.
        limit: usize,
    },
    /// `start_at` named a node that is not a root of the workflow.
    #[error(
        "node {node} of workflow {workflow} cannot start a run: only nodes without inputs can"
    )]
    NotATrigger {
        /// The workflow.
        workflow: WorkflowId,
        /// The node named.
        node: NodeId,
    },
    /// The engine was shut down.
    #[error("the engine is shut down; build a new one to continue")]
    ShutDown,
    /// The engine was asked to move long strings to a content store, and
    /// its store keeps no content.
    #[error("EngineBuilder::content_threshold needs a store that keeps content (Store::content_store answers None for this one); drop the threshold or use a store that keeps content")]
    NoContentStore,
}

/// The result of an engine call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
