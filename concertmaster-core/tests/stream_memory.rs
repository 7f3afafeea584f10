//! A stream of items far larger than memory allows goes through three
//! streaming nodes in bounded memory. Its own test binary, so that the
//! process's peak resident memory is this test's.
//!
//! `CONCERTMASTER_STREAM_ITEMS` sets how many 1 KiB items (default 200,000:
//! 200 MiB of payload, more than the bound below).

use std::time::Instant;

use async_trait::async_trait;
use concertmaster_core::{
    node::{Join, NodeCategory},
    Engine, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::{json, Value};

/// Peak resident memory the process may reach, in bytes.
const PEAK_BOUND: u64 = 100 * 1024 * 1024;
const PAYLOAD: usize = 1024;

/// `/proc/self/status` field `name` (`VmHWM`, `VmRSS`), in bytes.
fn status(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .expect("the field is there")
        * 1024
}

/// Makes `count` items of 1 KiB, as a reader of a large export would.
struct Export;

#[async_trait]
impl Node for Export {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let count = input.main_items()[0]["count"].as_u64().unwrap_or(0);
        for n in 0..count {
            let mut item = Item::new();
            item.insert("n".into(), n.into());
            item.insert("payload".into(), "x".repeat(PAYLOAD).into());
            ctx.emit("main", item).await?;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }
}

/// Checks and trims each item as it comes: a transform in the middle of
/// a stream.
struct Trim;

#[async_trait]
impl Node for Trim {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        while let Some(mut item) = ctx.next_item().await? {
            let size = item
                .remove("payload")
                .and_then(|p| p.as_str().map(str::len))
                .unwrap_or(0);
            item.insert("size".into(), size.into());
            ctx.emit("main", item).await?;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }

    fn join(&self) -> Join {
        Join::Stream
    }
}

/// Adds the items up: the load into an ERP, say.
struct Tally;

#[async_trait]
impl Node for Tally {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let (mut items, mut bytes, mut sum) = (0_u64, 0_u64, 0_u64);
        while let Some(item) = ctx.next_item().await? {
            items += 1;
            bytes += item["size"].as_u64().unwrap_or(0);
            sum += item["n"].as_u64().unwrap_or(0);
        }
        let mut out = Item::new();
        out.insert("items".into(), items.into());
        out.insert("bytes".into(), bytes.into());
        out.insert("sum".into(), sum.into());
        Ok(NodeOutcome::main(vec![out]))
    }

    fn join(&self) -> Join {
        Join::Stream
    }
}

fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("export", NodeCategory::Trigger), Export)
        .expect("registers");
    registry
        .register_node(NodeDescriptor::new("trim", NodeCategory::Transform), Trim)
        .expect("registers");
    registry
        .register_node(NodeDescriptor::new("tally", NodeCategory::Transform), Tally)
        .expect("registers");
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_larger_than_memory_goes_through_three_nodes_in_bounded_memory() {
    let count: u64 = std::env::var("CONCERTMASTER_STREAM_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let engine = Engine::builder()
        .registry(registry())
        .build()
        .await
        .expect("engine builds");
    let tenant = TenantId::new("acme");
    let def = WorkflowDefinition::from_value(json!({
        "id": "export", "name": "Export",
        "nodes": [
            { "id": "export", "type": "export" },
            { "id": "trim", "type": "trim" },
            { "id": "tally", "type": "tally" }
        ],
        "edges": [
            { "source": "export", "target": "trim" },
            { "source": "trim", "target": "tally" }
        ]
    }))
    .expect("parses");
    let workflow = engine.publish(&tenant, def).await.expect("publishes");
    let baseline = status("VmRSS");
    let began = Instant::now();
    let run = engine
        .start(&workflow, json!({ "count": count }))
        .await
        .expect("starts");
    let done = engine.finished(&tenant, run).await.expect("finishes");
    let took = began.elapsed();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let detail = engine.run(&tenant, run).await.expect("reads");
    let tally = Value::Object(detail.output("tally").expect("tally ran").main_items()[0].clone());
    assert_eq!(
        tally,
        json!({ "items": count, "bytes": count * PAYLOAD as u64, "sum": count * count.saturating_sub(1) / 2 })
    );
    let peak = status("VmHWM");
    let rate = count as f64 / took.as_secs_f64();
    println!(
        "{count} items of {PAYLOAD} bytes ({} MiB) streamed through 3 nodes in {took:.1?} \
         ({rate:.0} items/s); resident before {} MiB, peak {} MiB",
        (count * PAYLOAD as u64) >> 20,
        baseline >> 20,
        peak >> 20
    );
    assert!(
        peak < PEAK_BOUND,
        "peak resident memory {} MiB, more than {} MiB",
        peak >> 20,
        PEAK_BOUND >> 20
    );
}
