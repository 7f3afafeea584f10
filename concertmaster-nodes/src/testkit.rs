//! Running one built-in node in a real engine, for the nodes' unit tests.

use concertmaster_core::testing::TestEngine;
use concertmaster_core::{run::RunDetail, Error, Item, RunStatus, WorkflowDefinition};
use serde_json::{json, Value};

/// A workflow of the single node `n` of type `node_type` with `config`.
pub(crate) fn single(node_type: &str, config: Value) -> WorkflowDefinition {
    WorkflowDefinition::from_value(json!({
        "id": "test", "name": "test",
        "nodes": [{ "id": "n", "type": node_type, "config": config }]
    }))
    .expect("test workflow parses")
}

/// Runs node `n` on `trigger` (its items) until the run settles.
pub(crate) async fn run(node_type: &str, config: Value, trigger: Value) -> RunDetail {
    let test = TestEngine::new(crate::registry()).await.expect("engine");
    test.run(single(node_type, config), trigger)
        .await
        .expect("run settles")
}

/// Runs node `n` on `trigger` streamed to it by a `manual` trigger before
/// it, until the run settles: for nodes configured to stream.
pub(crate) async fn run_streamed(node_type: &str, config: Value, trigger: Value) -> RunDetail {
    let test = TestEngine::new(crate::registry()).await.expect("engine");
    let def = WorkflowDefinition::from_value(json!({
        "id": "test", "name": "test",
        "nodes": [
            { "id": "start", "type": "manual" },
            { "id": "n", "type": node_type, "config": config }
        ],
        "edges": [{ "source": "start", "target": "n" }]
    }))
    .expect("test workflow parses");
    test.run(def, trigger).await.expect("run settles")
}

/// The items node `n` emitted on `port` in a run that succeeded.
pub(crate) fn out(detail: &RunDetail, port: &str) -> Vec<Value> {
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "run failed: {:?}",
        detail.run.error
    );
    detail
        .output("n")
        .map(|ports| ports.get(port).iter().cloned().map(Value::Object).collect())
        .unwrap_or_default()
}

/// The message of a publish refused for node `n`'s config.
pub(crate) async fn publish_error(node_type: &str, config: Value) -> String {
    let test = TestEngine::new(crate::registry()).await.expect("engine");
    match test.publish(single(node_type, config)).await {
        Err(err @ Error::Validation(_)) => err.to_string(),
        Err(other) => panic!("expected a validation error, got {other}"),
        Ok(_) => panic!("the config was accepted"),
    }
}

/// Items from a JSON array of objects.
pub(crate) fn items(value: Value) -> Vec<Item> {
    value
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default()
}
