//! Run with: cargo bench -p concertmaster-benches --bench streaming
//!
//! Items through an edge, streamed or handed over as one list: a producer
//! makes 10,000 items of about 100 bytes and a consumer adds them up, on
//! the in-memory store. Streamed, the consumer reads each item while the
//! producer goes on, through a queue of `DEFAULT_EDGE_CAPACITY` items;
//! handed over, the producer's list is recorded and given to the consumer
//! once the producer ended. The difference is what streaming costs per
//! item (a queue hand-off) against what it saves (holding the list).

#![allow(missing_docs)]

use std::time::Duration;

use async_trait::async_trait;
use concertmaster_benches::time_runs;
use concertmaster_core::{
    node::{Join, NodeCategory},
    Engine, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    TenantId, WorkflowDefinition,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

const ITEMS: u64 = 10_000;

fn item(n: u64) -> Item {
    let mut item = Item::new();
    item.insert("n".into(), n.into());
    item.insert("supplier".into(), format!("supplier-{n:08}").into());
    item.insert("country".into(), "DE".into());
    item.insert("amount".into(), (n as f64 * 1.5).into());
    item
}

/// Emits `ITEMS` items, one at a time, or returns them as one list.
struct Make {
    stream: bool,
}

#[async_trait]
impl Node for Make {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        if !self.stream {
            return Ok(NodeOutcome::main((0..ITEMS).map(item).collect()));
        }
        for n in 0..ITEMS {
            ctx.emit("main", item(n)).await?;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }
}

/// Adds the items' `n` up, read from its stream or from its input.
struct Sum {
    stream: bool,
}

#[async_trait]
impl Node for Sum {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut sum = 0;
        if self.stream {
            while let Some(item) = ctx.next_item().await? {
                sum += item["n"].as_u64().unwrap_or(0);
            }
        } else {
            sum = input
                .items("main")
                .map(|i| i["n"].as_u64().unwrap_or(0))
                .sum();
        }
        let mut out = Item::new();
        out.insert("sum".into(), sum.into());
        Ok(NodeOutcome::main(vec![out]))
    }

    fn join(&self) -> Join {
        if self.stream {
            Join::Stream
        } else {
            Join::All
        }
    }
}

fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    for (suffix, stream) in [("streamed", true), ("listed", false)] {
        registry
            .register_node(
                NodeDescriptor::new(format!("make_{suffix}"), NodeCategory::Trigger),
                Make { stream },
            )
            .expect("registers");
        registry
            .register_node(
                NodeDescriptor::new(format!("sum_{suffix}"), NodeCategory::Transform),
                Sum { stream },
            )
            .expect("registers");
    }
    registry
}

fn pair(suffix: &str) -> WorkflowDefinition {
    WorkflowDefinition::from_value(json!({
        "id": suffix, "name": suffix,
        "nodes": [
            { "id": "make", "type": format!("make_{suffix}") },
            { "id": "sum", "type": format!("sum_{suffix}") }
        ],
        "edges": [{ "source": "make", "target": "sum" }]
    }))
    .expect("parses")
}

fn streaming(c: &mut Criterion) {
    let runtime = concertmaster_benches::runtime();
    let tenant = TenantId::new("bench");
    let (engine, shapes) = runtime.block_on(async {
        let engine = Engine::builder()
            .store(concertmaster_core::InMemoryStore::new().keep_ended_runs(10))
            .registry(registry())
            .build()
            .await
            .expect("engine");
        let mut shapes = Vec::new();
        for name in ["streamed", "listed"] {
            let workflow = engine
                .publish(&tenant, pair(name))
                .await
                .expect("publishes");
            shapes.push((name, workflow));
        }
        (engine, shapes)
    });

    let mut group = c.benchmark_group("edge");
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(ITEMS));
    for (name, workflow) in &shapes {
        group.bench_with_input(BenchmarkId::new(*name, ITEMS), workflow, |b, workflow| {
            b.to_async(&runtime).iter_custom(|iters| {
                time_runs(
                    engine.clone(),
                    tenant.clone(),
                    workflow.clone(),
                    json!({}),
                    iters,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, streaming);
criterion_main!(benches);
