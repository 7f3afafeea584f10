//! Workloads shared by the criterion benchmarks beside this crate (the
//! `[[bench]]` targets): no-op nodes and the workflow shapes they run in.

use async_trait::async_trait;
use concertmaster_core::{
    Node, NodeCategory, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    WorkflowDefinition,
};
use serde_json::{json, Value};

/// Hands its input on: the cheapest node there is.
struct Noop;

#[async_trait]
impl Node for Noop {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::Done(input))
    }
}

/// Emits one empty item, whatever it got: keeps fan-in inputs small.
struct Tick;

#[async_trait]
impl Node for Tick {
    async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::main(vec![Default::default()]))
    }
}

/// Node types `trigger`, `noop` and `tick`.
pub fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    for (type_id, category) in [
        ("trigger", NodeCategory::Trigger),
        ("noop", NodeCategory::Transform),
    ] {
        registry
            .register_node(NodeDescriptor::new(type_id, category), Noop)
            .expect("benchmark node types register");
    }
    registry
        .register_node(NodeDescriptor::new("tick", NodeCategory::Transform), Tick)
        .expect("benchmark node types register");
    registry
}

/// A chain of `n` nodes: a trigger, then `n - 1` no-ops.
pub fn chain(n: usize) -> WorkflowDefinition {
    let nodes: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("n{i}"), "type": if i == 0 { "trigger" } else { "noop" }}))
        .collect();
    let edges: Vec<Value> = (1..n)
        .map(|i| json!({"source": format!("n{}", i - 1), "target": format!("n{i}")}))
        .collect();
    definition(json!({"id": format!("chain-{n}"), "name": "chain", "nodes": nodes, "edges": edges}))
}

/// A trigger fanning out to `width` nodes that all join into one.
pub fn fan_out_in(width: usize) -> WorkflowDefinition {
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger"}),
        json!({"id": "join", "type": "tick"}),
    ];
    let mut edges = Vec::new();
    for i in 0..width {
        nodes.push(json!({"id": format!("w{i}"), "type": "tick"}));
        edges.push(json!({"source": "start", "target": format!("w{i}")}));
        edges.push(json!({"source": format!("w{i}"), "target": "join"}));
    }
    definition(json!({"id": format!("fan-{width}"), "name": "fan", "nodes": nodes, "edges": edges}))
}

fn definition(json: Value) -> WorkflowDefinition {
    WorkflowDefinition::from_value(json).expect("benchmark workflows are valid JSON")
}
