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
//!     Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
//!     RunStatus, TenantId, WorkflowDefinition, node::{NodeCategory, Suspend},
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
//! # Where things are
//!
//! The crate root holds what a host and a node author use first. The rest
//! is grouped by who needs it:
//!
//! | module | for |
//! |--------|-----|
//! | [`node`] | node authors: waiting, joins, ports, palette categories, registry errors |
//! | [`workflow`] | building, publishing and migrating workflows in code |
//! | [`validate`] | checking a workflow before publishing; JSON Schema checks |
//! | [`run`] | inspecting, resuming and rerunning runs; who acts (audit) |
//! | [`form`] | form services and form nodes: schemas, links, responses, reviews |
//! | [`content`] | large values passed by reference, read and written in chunks |
//! | [`connector`] | connector authors (ERP systems) and hosts registering them |
//! | [`store`] | storage backend authors; the audit log |
//! | [`clock`] | moving time by hand in tests |
//! | [`limits`] | the engine's bounds and defaults |
//! | [`telemetry`] | metric names |
//! | `testing` (feature) | the store conformance suite, test engines for node authors |
//!
//! # Features
//!
//! | feature   | default | what it adds |
//! |-----------|---------|--------------|
//! | `runtime` | yes     | [`Engine`] (tokio), durable timers, metrics. Without it the crate is the model, the traits and validation, and builds for `wasm32-unknown-unknown`. |
//! | `testing` | no      | `testing`: the store conformance suite and helpers for node authors. |
//!
//! # Metrics
//!
//! Recorded through the `metrics` facade under the names in [`telemetry`]:
//! `workflow_executions_total`, `workflow_execution_duration_seconds`,
//! `active_workflows`, `node_execution_duration_seconds`.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
// Without the runtime, parts of the plan only the executor reads go unused.
#![cfg_attr(not(feature = "runtime"), allow(dead_code))]

pub mod clock;
mod config_schema;
pub mod connector;
pub mod content;
mod descriptor;
#[cfg(feature = "runtime")]
mod engine;
#[cfg(feature = "runtime")]
mod error;
pub mod form;
mod graph;
mod ids;
mod item;
pub mod node;
mod registry;
pub mod run;
mod schema;
pub mod store;
#[cfg(feature = "runtime")]
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "runtime")]
mod token;
pub mod validate;
pub mod workflow;

pub use descriptor::NodeDescriptor;
#[cfg(feature = "runtime")]
pub use engine::{Engine, EngineBuilder};
#[cfg(feature = "runtime")]
pub use error::{Error, Result};
pub use ids::{NodeId, RunId, TenantId, WorkflowId};
pub use item::{Item, Ports};
pub use node::{Node, NodeContext, NodeError, NodeOutcome};
pub use registry::NodeRegistry;
pub use run::{Run, RunStatus};
pub use store::{InMemoryStore, Store};
pub use workflow::WorkflowDefinition;

/// The bounds the engine and its model keep, and the defaults a host may
/// change, in one place: for hosts sizing their service and for editors
/// checking a workflow before they send it.
pub mod limits {
    pub use crate::content::CHUNK_SIZE;
    #[cfg(feature = "runtime")]
    pub use crate::engine::{
        DEFAULT_EDGE_CAPACITY, DEFAULT_HELD_WAKEUP_TTL, DEFAULT_MAX_PORT_ITEMS,
    };
    pub use crate::form::MAX_PROPERTY_NAME;
    pub use crate::validate::{MAX_EDGES, MAX_NODES};
    pub use crate::workflow::MAX_DEFINITION_BYTES;
}
