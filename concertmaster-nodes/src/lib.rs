//! The built-in node library of ConcertMaster.
//!
//! [`registry`] returns a [`NodeRegistry`] holding every built-in node;
//! [`register_builtins`] adds them to a registry that also holds the host's
//! own nodes. Each node has a descriptor (palette label, icon, description)
//! and a config JSON Schema; configs are checked, and expressions compiled,
//! when a workflow is published, so a mistake is reported with the node id
//! and the config field before any run starts.
//!
//! ```
//! use concertmaster_core::{Engine, RunStatus, TenantId, WorkflowDefinition};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder().registry(concertmaster_nodes::registry()).build().await?;
//! let tenant = TenantId::new("acme");
//! let workflow = engine
//!     .publish(&tenant, WorkflowDefinition::from_value(json!({
//!         "id": "large-suppliers", "name": "Large suppliers to SAP shape",
//!         "nodes": [
//!             { "id": "start", "type": "manual" },
//!             { "id": "large", "type": "filter", "config": { "condition": ".employees >= 250" } },
//!             { "id": "shape", "type": "map_fields", "config": { "mappings": [
//!                 { "to": "/BusinessPartnerName", "from": "/name", "convert": "trim", "required": true },
//!                 { "to": "/Country", "from": "/country", "default": "DE" }
//!             ] } }
//!         ],
//!         "edges": [
//!             { "id": "e1", "source": "start", "target": "large" },
//!             { "id": "e2", "source": "large", "target": "shape" }
//!         ]
//!     }))?)
//!     .await?;
//! let run = engine
//!     .start(&workflow, json!([{ "name": " ACME GmbH ", "employees": 900 }, { "name": "Tiny", "employees": 3 }]))
//!     .await?;
//! assert_eq!(engine.finished(&tenant, run).await?.status, RunStatus::Succeeded);
//! let detail = engine.run(&tenant, run).await?;
//! let shaped = detail.output("shape").unwrap().main_items();
//! assert_eq!(shaped.len(), 1);
//! assert_eq!(shaped[0]["BusinessPartnerName"], "ACME GmbH");
//! # Ok(()) }
//! ```
//!
//! | category   | nodes |
//! |------------|-------|
//! | trigger    | `manual`, `webhook`, `schedule` (run by a [`Scheduler`]); `form_submission` (with forms) |
//! | collection | `send_form`, `wait_for_responses`, `reminders`, `review` (with forms) |
//! | transform  | `map_fields`, `jq`, `validate`, `anonymize` |
//! | logic      | `if`, `switch`, `filter`, `merge`, `delay`; `sub_workflow` (with [`SubWorkflows`]) |
//! | output     | `http_request` (feature `http`); `collect` (with [`Datasets`]) |
//!
//! The collection nodes work through a [`forms::Forms`], which holds the
//! store and the [`forms::Notifier`] that delivers links; register them with
//! [`forms::Forms::register_nodes`]. Expressions are jq ([`Expr`]); they
//! see only the item they are given.
//!
//! Features: `http` (`http_request`, its SSRF guard, and the host's forward
//! proxy if it gives one), `smtp` (form links by e-mail), `portal` (the
//! pages of a form portal, `forms::portal`, whose templates escape every
//! value they splice in).

mod collection;
mod expr;
pub mod forms;
mod logic;
mod output;
mod schedule;
mod support;
#[cfg(test)]
mod testkit;
mod transform;
mod trigger;

pub use expr::{
    Expr, ExprError, DEFAULT_TIME_LIMIT, MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LEN, MAX_OUTPUTS,
    MAX_RESULT_BYTES,
};
pub use logic::sub_workflow::SubWorkflows;
pub use output::collect::Datasets;
#[cfg(feature = "http")]
pub use output::guard::{HttpGuard, HttpResolver};
#[cfg(feature = "http")]
pub use output::proxy::{HttpProxy, HttpProxyError};
pub use schedule::cron::{CronError, CronSchedule};
pub use schedule::scheduler::{ScheduleError, Scheduler};
pub use trigger::schedule::MissedFires;

use concertmaster_core::{node::RegistryError, NodeRegistry};

/// Adds every built-in node to `registry`, with default settings; fails
/// if one of their type ids is taken already.
pub fn register_builtins(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    Builtins::new().register(registry)
}

/// The built-in nodes with the settings some of them take.
///
/// ```
/// # #[cfg(feature = "http")] {
/// use concertmaster_nodes::{Builtins, HttpGuard};
///
/// let mut registry = concertmaster_core::NodeRegistry::new();
/// Builtins::new()
///     .http_guard(HttpGuard::new().allow("erp.internal"))
///     .register(&mut registry)?;
/// # }
/// # Ok::<(), concertmaster_core::node::RegistryError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Builtins {
    #[cfg(feature = "http")]
    http: HttpGuard,
    #[cfg(feature = "http")]
    proxy: Option<HttpProxy>,
}

impl Builtins {
    /// Default settings: `http_request` refuses every loopback, private and
    /// link-local target.
    pub fn new() -> Self {
        Self::default()
    }

    /// Which internal hosts `http_request` may reach.
    #[cfg(feature = "http")]
    pub fn http_guard(mut self, guard: HttpGuard) -> Self {
        self.http = guard;
        self
    }

    /// Sends `http_request`'s requests through the host's forward proxy.
    /// The guard still resolves and checks each target first, and the
    /// tunnel goes to the address it checked, never to a name the proxy
    /// would resolve on its own. Without this, no proxy is used
    /// (`HTTP_PROXY` and the like are ignored).
    #[cfg(feature = "http")]
    pub fn http_proxy(mut self, proxy: HttpProxy) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Adds the built-in nodes to `registry`.
    pub fn register(&self, registry: &mut NodeRegistry) -> Result<(), RegistryError> {
        trigger::register(registry)?;
        transform::register(registry)?;
        logic::register(registry)?;
        #[cfg(feature = "http")]
        output::http_request::register(registry, &self.http, self.proxy.as_ref())?;
        Ok(())
    }
}

/// A registry holding every built-in node.
pub fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    // An empty registry has none of their ids, so registering cannot fail.
    if let Err(err) = register_builtins(&mut registry) {
        unreachable!("built-in nodes clash among themselves: {err}");
    }
    registry
}

#[cfg(test)]
mod tests {
    use concertmaster_core::node::NodeCategory;

    #[test]
    fn every_builtin_is_documented_for_the_palette() {
        let registry = super::registry();
        let types: Vec<_> = registry.descriptors().map(|d| d.type_id.as_str()).collect();
        for expected in [
            "manual",
            "webhook",
            "map_fields",
            "jq",
            "validate",
            "anonymize",
            "if",
            "switch",
            "filter",
            "merge",
            "delay",
        ] {
            assert!(types.contains(&expected), "{expected} is not registered");
        }
        for d in registry.descriptors() {
            assert!(
                !d.label.is_empty() && !d.description.is_empty(),
                "{} lacks docs",
                d.type_id
            );
            assert_eq!(
                d.config_schema["type"], "object",
                "{} config schema",
                d.type_id
            );
            assert_eq!(
                d.inputs.is_empty(),
                d.category == NodeCategory::Trigger,
                "{}",
                d.type_id
            );
        }
    }

    #[test]
    fn builtins_can_join_a_registry_with_host_nodes_once() {
        let mut registry = super::registry();
        assert!(
            super::register_builtins(&mut registry).is_err(),
            "twice must clash"
        );
    }
}
