//! Who is acting: set by the host around a request (its user, its API
//! key), read when the engine writes an audit entry.

use std::future::Future;

tokio::task_local! {
    static ACTOR: String;
}

/// Runs `future` on behalf of `actor` (a user id, an API key's name): the
/// audit entries the engine writes while it runs name them.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use concertmaster_core::node::NodeCategory;
/// use concertmaster_core::run::acting_as;
/// use concertmaster_core::store::{AuditFilter, AuditStore};
/// use concertmaster_core::workflow::NodeSpec;
/// use concertmaster_core::*;
///
/// struct Pass;
///
/// #[async_trait]
/// impl Node for Pass {
///     async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
///         Ok(NodeOutcome::Done(input))
///     }
/// }
///
/// let store = Arc::new(InMemoryStore::new());
/// let mut registry = NodeRegistry::new();
/// registry.register_node(NodeDescriptor::new("pass", NodeCategory::Transform), Pass)?;
/// let engine = Engine::builder().shared_store(store.clone()).registry(registry).build().await?;
/// let tenant = TenantId::new("acme");
/// let def = WorkflowDefinition::new("w", "W").node(NodeSpec::new("n", "pass"));
///
/// acting_as("ops@acme", engine.publish(&tenant, def)).await?;
/// let log = store.audit_log(&tenant, &AuditFilter::default()).await?;
/// assert_eq!(log[0].actor.as_deref(), Some("ops@acme"));
/// # Ok(()) }
/// ```
pub async fn acting_as<F: Future>(actor: impl Into<String>, future: F) -> F::Output {
    ACTOR.scope(actor.into(), future).await
}

/// The actor of the current task, if the host named one with
/// [`acting_as`]: what services other than the engine (forms,
/// connections) record when their caller names no actor.
pub fn current_actor() -> Option<String> {
    ACTOR.try_with(Clone::clone).ok()
}
