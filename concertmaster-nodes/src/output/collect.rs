//! `collect`: stores the items as a named dataset that the host queries
//! (reports, exports, an inbox of approved records).

use std::sync::Arc;

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    store::DatasetStore,
    store::{DatasetFilter, DatasetRecord, StoreResult},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports, TenantId,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::collection::store_failed;

/// Datasets in one store: registers the `collect` node and reads what it
/// collected.
///
/// ```
/// use std::sync::Arc;
/// use concertmaster_core::{Engine, InMemoryStore, TenantId, store::DatasetFilter};
/// use concertmaster_nodes::Datasets;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(InMemoryStore::new());
/// let datasets = Datasets::new(store.clone());
/// let mut registry = concertmaster_nodes::registry();
/// datasets.register_nodes(&mut registry)?;
/// let engine = Engine::builder().shared_store(store).registry(registry).build().await?;
/// // ... runs with a `collect` node into "approved-suppliers" ...
/// let records = datasets
///     .records(&TenantId::new("acme"), "approved-suppliers", &DatasetFilter::all())
///     .await?;
/// assert!(records.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Datasets {
    store: Arc<dyn DatasetStore>,
}

impl std::fmt::Debug for Datasets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datasets").finish_non_exhaustive()
    }
}

impl Datasets {
    /// Datasets kept in `store`.
    pub fn new(store: Arc<dyn DatasetStore>) -> Self {
        Self { store }
    }

    /// Registers the `collect` node.
    pub fn register_nodes(&self, registry: &mut NodeRegistry) -> Result<(), RegistryError> {
        let store = Arc::clone(&self.store);
        registry.register_with_config(
            NodeDescriptor::new("collect", NodeCategory::Output)
                .with_side_effects()
                .label("Collect")
                .icon("database")
                .description(
                    "Stores the items in the named dataset, where the host reads them \
                     (Datasets::records); passes them on unchanged. A node that runs again \
                     replaces what it collected in the run, never doubles it.",
                ),
            move |config: CollectConfig| -> Result<Collect, ConfigError> {
                Ok(Collect {
                    store: Arc::clone(&store),
                    dataset: config.dataset,
                })
            },
        )
    }

    /// The records of dataset `name` passing `filter`, newest first.
    pub async fn records(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>> {
        self.store.dataset(tenant, name, filter).await
    }
}

/// Config of a `collect` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"dataset": "approved-suppliers"}))]
struct CollectConfig {
    /// The dataset the items are kept in.
    #[schemars(
        regex(pattern = "^[A-Za-z0-9_.-]{1,100}$"),
        example = "approved-suppliers"
    )]
    dataset: String,
}

struct Collect {
    store: Arc<dyn DatasetStore>,
    dataset: String,
}

#[async_trait]
impl Node for Collect {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        self.store
            .put_dataset(
                ctx.tenant(),
                &self.dataset,
                ctx.run_id(),
                ctx.node_id(),
                &items,
                ctx.now(),
            )
            .await
            .map_err(store_failed)?;
        Ok(NodeOutcome::main(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concertmaster_core::{Engine, InMemoryStore, RunStatus, WorkflowDefinition};
    use serde_json::json;

    #[tokio::test]
    async fn collected_items_can_be_read_by_the_host() {
        let store = Arc::new(InMemoryStore::new());
        let datasets = Datasets::new(store.clone());
        let mut registry = crate::registry();
        datasets.register_nodes(&mut registry).unwrap();
        let engine = Engine::builder()
            .shared_store(store)
            .registry(registry)
            .build()
            .await
            .unwrap();
        let tenant = TenantId::new("acme");
        let workflow = engine
            .publish(
                &tenant,
                WorkflowDefinition::from_value(json!({
                    "id": "c", "name": "C",
                    "nodes": [{"id": "keep", "type": "collect", "config": {"dataset": "approved-suppliers"}}]
                }))
                .unwrap(),
            )
            .await
            .unwrap();
        for name in ["ACME", "Globex"] {
            let run = engine
                .start(&workflow, json!({"name": name}))
                .await
                .unwrap();
            assert_eq!(
                engine.finished(&tenant, run).await.unwrap().status,
                RunStatus::Succeeded
            );
        }
        let records = datasets
            .records(&tenant, "approved-suppliers", &DatasetFilter::all())
            .await
            .unwrap();
        let mut names: Vec<_> = records.iter().map(|r| r.item["name"].clone()).collect();
        names.sort_by_key(|v| v.to_string());
        assert_eq!(names, vec![json!("ACME"), json!("Globex")]);
        assert!(datasets
            .records(
                &TenantId::new("other"),
                "approved-suppliers",
                &DatasetFilter::all()
            )
            .await
            .unwrap()
            .is_empty());
    }
}
