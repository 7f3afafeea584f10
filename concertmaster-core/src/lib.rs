//! ConcertMaster core: the workflow model, the `Node` and `Store` traits, the
//! async executor and the in-memory store.
//!
//! A custom node author depends on this crate alone. A host service builds an
//! [`Engine`] on a [`Store`], registers node types on a [`NodeRegistry`],
//! publishes [`WorkflowDefinition`]s and starts, resumes and inspects runs.
//!
//! ```
//! use async_trait::async_trait;
//! use concertmaster_core::{
//!     Engine, Node, NodeCategory, NodeContext, NodeDescriptor, NodeError, NodeOutcome,
//!     NodeRegistry, Ports, RunStatus, Suspend, TenantId, WorkflowDefinition,
//! };
//! use serde_json::json;
//!
//! /// Waits until a reviewer decides, then passes the decision on.
//! struct Review;
//!
//! #[async_trait]
//! impl Node for Review {
//!     async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
//!         match ctx.resumed() {
//!             None => Ok(NodeOutcome::suspend(Suspend::until_event(format!("review:{}", ctx.run_id())))),
//!             Some(resumed) => {
//!                 let mut items = input.main_items().to_vec();
//!                 for item in &mut items {
//!                     item.insert("decision".into(), resumed.wakeup_payload().clone());
//!                 }
//!                 Ok(NodeOutcome::main(items))
//!             }
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = NodeRegistry::new();
//! registry.register_node(NodeDescriptor::new("review", NodeCategory::Collection), Review)?;
//! let engine = Engine::builder().registry(registry).build().await?;
//!
//! let tenant = TenantId::new("acme");
//! let workflow = engine
//!     .publish(&tenant, WorkflowDefinition::from_json(r#"{
//!         "id": "approve-supplier", "name": "Approve supplier",
//!         "nodes": [{ "id": "review", "type": "review" }]
//!     }"#)?)
//!     .await?;
//! let run = engine.start(&workflow, json!({ "supplier": "ACME GmbH" })).await?;
//! assert_eq!(engine.settled(&tenant, run).await?.status, RunStatus::Waiting);
//!
//! engine.resume(&tenant, &format!("review:{run}"), json!("approved")).await?;
//! engine.finished(&tenant, run).await?;
//! let detail = engine.run(&tenant, run).await?;
//! assert_eq!(detail.output("review").unwrap().main_items()[0]["decision"], "approved");
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature   | default | what it adds |
//! |-----------|---------|--------------|
//! | `runtime` | yes     | [`Engine`] (tokio), durable timers, metrics. Without it the crate is the model, the traits and validation, and builds for `wasm32-unknown-unknown`. |
//! | `testing` | no      | [`testing`]: the store conformance suite and helpers for node authors. |
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade under the names in [`telemetry`]:
//! `workflow_executions_total`, `workflow_execution_duration_seconds`,
//! `active_workflows`, `node_execution_duration_seconds`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// Without the runtime, parts of the plan only the executor reads go unused.
#![cfg_attr(not(feature = "runtime"), allow(dead_code))]

mod clock;
mod connector;
mod content;
mod descriptor;
#[cfg(feature = "runtime")]
mod engine;
#[cfg(feature = "runtime")]
mod error;
mod form;
mod graph;
mod ids;
mod item;
mod node;
mod registry;
mod run;
mod schema;
mod store;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "runtime")]
mod token;
mod validate;
mod workflow;

pub use clock::{Clock, ManualClock, SystemClock};
pub use connector::{
    retry_after, url_without_password, ConnectionCheck, Connector, ConnectorError,
    ConnectorFactory, ErpMessage, Page, ReadQuery, Record, RecordFailure, RecordOutcome, WriteMode,
    Written,
};
#[cfg(feature = "runtime")]
pub use content::{ContentError, ContentReader, ContentWriter, Contents, ItemReader, ItemWriter};
pub use content::{ContentRef, CHUNK_SIZE, CONTENT_KEY, ITEMS_MEDIA_TYPE};
pub use descriptor::{NodeCategory, NodeDescriptor, PortSpec};
#[cfg(feature = "runtime")]
pub use engine::{
    acting_as, current_actor, Delivery, Engine, EngineBuilder, Migration, PublishedWorkflow,
    RerunBatch, RerunFrom, RerunReport, RerunVersion, DEFAULT_EDGE_CAPACITY,
    DEFAULT_HELD_WAKEUP_TTL, DEFAULT_MAX_PORT_ITEMS,
};
#[cfg(feature = "runtime")]
pub use error::{Error, Result};
pub use form::{
    Consent, FormDraft, FormError, FormLink, FormResponse, FormSchema, PiiField, PreparedResponse,
    ResponseFilter, Review, ReviewStatus, Submitter, MAX_PROPERTY_NAME, PII_KEYWORD,
    RETENTION_KEYWORD,
};
pub use ids::{ContentId, FormId, NodeId, ResponseId, RunId, TenantId, WorkflowId};
pub use item::{Item, Ports, ERROR_PORT, MAIN_PORT};
pub use node::{Join, Node, NodeContext, NodeError, NodeOutcome, Resumed, Suspend, Wakeup};
pub use registry::{ConfigError, NodeRegistry, RegistryError};
pub use run::{
    NodeExecution, NodeStatus, PreparedRun, Run, RunDetail, RunFilter, RunOrigin, RunParent,
    RunStatus, Wait,
};
pub use schema::{FieldError, SchemaValidator};
pub use store::{
    AuditAction, AuditEntry, AuditFilter, AuditStore, ConnectionStore, ContentStore, DatasetFilter,
    DatasetRecord, DatasetStore, DeliveryAudit, Epoch, FormStore, HeldWakeup, InMemoryStore,
    LeaseRequest, LeaseStore, RunClaim, RunMigration, RunStart, RunStore, Store, StoreError,
    StoreErrorKind, StoreResult, StoredConnection, WaitStore, WakeFor, Woken, WorkflowStore,
};
#[cfg(feature = "runtime")]
pub use token::FormToken;
/// Stops what takes one ([`Engine::rerun_batch`], a node's
/// [`NodeContext::cancellation`]).
#[cfg(feature = "runtime")]
pub use tokio_util::sync::CancellationToken;
pub use validate::{
    diagnose, validate, Issue, IssueKind, ValidatedWorkflow, ValidationError, MAX_EDGES, MAX_NODES,
};
pub use workflow::{
    DefinitionError, Edge, NodeSpec, Position, RetryPolicy, WorkflowDefinition,
    MAX_DEFINITION_BYTES,
};
