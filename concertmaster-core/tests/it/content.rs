//! Large values leave the items: past the configured size a node's output
//! string goes to the content store, and the nodes after read it from
//! there a chunk at a time.

use async_trait::async_trait;
use concertmaster_core::{
    content::{ContentRef, ItemReader, ItemWriter, ITEMS_MEDIA_TYPE},
    limits::DEFAULT_MAX_PORT_ITEMS,
    node::NodeCategory,
    run::{NodeStatus, RunFilter},
    workflow::PublishedWorkflow,
    Engine, EngineBuilder, Error, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome,
    NodeRegistry, Ports, RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::json;

/// Emits a 100 kB report and a short note.
struct Report;

#[async_trait]
impl Node for Report {
    async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let mut item = Item::new();
        item.insert("report".into(), json!("ä".repeat(50_000)));
        item.insert("note".into(), json!("short"));
        item.insert("pages".into(), json!(["p1", "x".repeat(5_000)]));
        Ok(NodeOutcome::main(vec![item]))
    }
}

/// Reads the report through the content store and says what it found.
struct Measure;

#[async_trait]
impl Node for Measure {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut out = Vec::new();
        for item in input.take("main") {
            let report = ContentRef::from_value(&item["report"])
                .ok_or_else(|| NodeError::fatal("the report is not a reference"))?;
            let mut reader = ctx.contents().read(&report);
            let mut text = Vec::new();
            while let Some(chunk) = reader
                .next_chunk()
                .await
                .map_err(|e| NodeError::retryable(e.to_string()))?
            {
                text.extend(chunk);
            }
            let text = String::from_utf8(text).map_err(|e| NodeError::fatal(e.to_string()))?;
            let mut found = Item::new();
            found.insert("chars".into(), json!(text.chars().count()));
            found.insert("same".into(), json!(text == "ä".repeat(50_000)));
            found.insert("note".into(), item["note"].clone());
            found.insert("page2".into(), item["pages"][1].clone());
            out.push(found);
        }
        Ok(NodeOutcome::main(out))
    }
}

/// Runs `first` → `second` on an in-memory engine (with `threshold` as
/// its content threshold) until the run succeeds; its detail.
async fn run_two(
    first: impl Node + 'static,
    second: impl Node + 'static,
    threshold: Option<usize>,
) -> concertmaster_core::run::RunDetail {
    run_two_with(first, second, threshold, json!({})).await
}

/// [`run_two`], started with `trigger`.
async fn run_two_with(
    first: impl Node + 'static,
    second: impl Node + 'static,
    threshold: Option<usize>,
    trigger: serde_json::Value,
) -> concertmaster_core::run::RunDetail {
    let (engine, workflow) = two_nodes(first, second, threshold).await;
    let tenant = workflow.tenant().clone();
    let run = engine.start(&workflow, trigger).await.unwrap();
    let done = engine.finished(&tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    engine.run(&tenant, run).await.unwrap()
}

/// An in-memory engine (with `threshold` as its content threshold) and a
/// published workflow of `first` → `second`, for tenant `acme`.
async fn two_nodes(
    first: impl Node + 'static,
    second: impl Node + 'static,
    threshold: Option<usize>,
) -> (Engine, PublishedWorkflow) {
    two_nodes_built(first, second, |builder| match threshold {
        Some(bytes) => builder.content_threshold(bytes),
        None => builder,
    })
    .await
}

/// [`two_nodes`], on an engine `configure` sets up.
async fn two_nodes_built(
    first: impl Node + 'static,
    second: impl Node + 'static,
    configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
) -> (Engine, PublishedWorkflow) {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("first", NodeCategory::Transform), first)
        .unwrap();
    registry
        .register_node(
            NodeDescriptor::new("second", NodeCategory::Transform),
            second,
        )
        .unwrap();
    let engine = configure(Engine::builder().registry(registry))
        .build()
        .await
        .unwrap();
    let def = WorkflowDefinition::from_value(json!({
        "id": "two", "name": "Two",
        "nodes": [{ "id": "make", "type": "first" }, { "id": "read", "type": "second" }],
        "edges": [{ "id": "e", "source": "make", "target": "read" }]
    }))
    .unwrap();
    let workflow = engine.publish(&TenantId::new("acme"), def).await.unwrap();
    (engine, workflow)
}

#[tokio::test]
async fn a_large_output_value_travels_by_reference_and_reads_back_whole() {
    let detail = run_two(Report, Measure, Some(4096)).await;
    let made = &detail.output("make").unwrap().main_items()[0];
    let report = ContentRef::from_value(&made["report"]).expect("stored by reference");
    assert_eq!(report.size, 100_000, "the UTF-8 bytes");
    assert_eq!(made["note"], "short", "small values stay in the item");
    assert!(
        ContentRef::from_value(&made["pages"][1]).is_some(),
        "also inside arrays"
    );
    assert_eq!(made["pages"][0], "p1");
    let stored = serde_json::to_string(&detail.nodes).unwrap();
    assert!(
        stored.len() < 10_000,
        "the run's records hold references, not the values"
    );

    let read = &detail.output("read").unwrap().main_items()[0];
    assert_eq!(read["chars"], 50_000);
    assert_eq!(read["same"], true);
    assert_eq!(read["note"], "short");
    assert!(ContentRef::from_value(&read["page2"]).is_some());
}

/// Passes its input on.
struct Keep;

#[async_trait]
impl Node for Keep {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::Done(input))
    }
}

#[tokio::test]
async fn a_large_trigger_value_is_stored_by_reference_before_the_run_starts() {
    let trigger = json!({
        "report": "ä".repeat(50_000),
        "note": "short",
        "pages": ["p1", "x".repeat(5_000)],
    });
    let detail = run_two_with(Measure, Keep, Some(4096), trigger).await;
    let started = &detail.run.trigger[0];
    let report = ContentRef::from_value(&started["report"]).expect("the run holds a reference");
    assert_eq!(report.size, 100_000);
    assert!(ContentRef::from_value(&started["pages"][1]).is_some());
    assert_eq!(started["note"], "short", "small values stay in the item");
    assert!(
        serde_json::to_string(&detail.run).unwrap().len() < 2_000,
        "the stored run holds references, not the values"
    );

    let read = &detail.output("make").unwrap().main_items()[0];
    assert_eq!(read["chars"], 50_000, "the first node reads the value back");
    assert_eq!(read["same"], true);
}

#[tokio::test]
async fn a_start_with_a_key_used_before_keeps_the_first_runs_content() {
    let (engine, workflow) = two_nodes(Keep, Keep, Some(1024)).await;
    let tenant = workflow.tenant().clone();
    let trigger = || json!({ "file": "z".repeat(10_000) });
    let (first, started) = engine
        .start_once(&workflow, None, "order-7", trigger())
        .await
        .unwrap();
    assert!(started);
    engine.finished(&tenant, first).await.unwrap();
    let (again, started) = engine
        .start_once(&workflow, None, "order-7", trigger())
        .await
        .unwrap();
    assert_eq!(
        (again, started),
        (first, false),
        "the same run, not started twice"
    );

    // The second start's copy of the file was deleted; the first run's
    // reference still reads back whole.
    let run = engine.run(&tenant, first).await.unwrap().run;
    let file = ContentRef::from_value(&run.trigger[0]["file"]).expect("stored by reference");
    let contents = engine.contents(&tenant);
    let mut reader = contents.read(&file);
    let mut bytes = Vec::new();
    while let Some(chunk) = reader.next_chunk().await.unwrap() {
        bytes.extend(chunk);
    }
    assert_eq!(bytes, "z".repeat(10_000).into_bytes());
}

fn failed(err: impl std::fmt::Display) -> NodeError {
    NodeError::retryable(err.to_string())
}

/// Produces 200,000 items into the content store, one at a time.
struct Many;

#[async_trait]
impl Node for Many {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let mut writer = ItemWriter::new(&ctx.contents());
        for n in 0..200_000u64 {
            let mut item = Item::new();
            item.insert("n".into(), json!(n));
            item.insert("sku".into(), json!(format!("SKU-{n:06}")));
            writer.push(&item).await.map_err(failed)?;
        }
        let count = writer.count();
        let items = writer.finish().await.map_err(failed)?;
        let mut out = Item::new();
        out.insert("items".into(), items.to_value());
        out.insert("count".into(), json!(count));
        Ok(NodeOutcome::main(vec![out]))
    }
}

/// Reads them back one at a time and adds them up.
struct Sum;

#[async_trait]
impl Node for Sum {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let batch = input.take("main").remove(0);
        let items = ContentRef::from_value(&batch["items"])
            .ok_or_else(|| NodeError::fatal("no items reference"))?;
        let mut reader = ItemReader::new(&ctx.contents(), &items);
        let (mut count, mut sum) = (0u64, 0u64);
        while let Some(item) = reader.next().await.map_err(failed)? {
            count += 1;
            sum += item["n"].as_u64().unwrap_or_default();
        }
        let mut out = Item::new();
        out.insert("count".into(), json!(count));
        out.insert("sum".into(), json!(sum));
        out.insert("mediaType".into(), json!(items.media_type));
        Ok(NodeOutcome::main(vec![out]))
    }
}

/// Emits `n` items on `main`, in one list.
struct Emit(usize);

#[async_trait]
impl Node for Emit {
    async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let items = (0..self.0)
            .map(|n| {
                let mut item = Item::new();
                item.insert("n".into(), json!(n));
                item
            })
            .collect();
        Ok(NodeOutcome::main(items))
    }
}

/// Counts what it was given.
struct Count;

#[async_trait]
impl Node for Count {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut out = Item::new();
        out.insert("count".into(), json!(input.main_items().len()));
        Ok(NodeOutcome::main(vec![out]))
    }
}

#[tokio::test]
async fn a_port_past_the_item_limit_fails_its_node_and_nothing_of_it_is_kept() {
    let (engine, workflow) = two_nodes_built(Emit(1_001), Count, |b| b.max_port_items(1_000)).await;
    let tenant = workflow.tenant().clone();
    let run = engine.start(&workflow, json!({})).await.unwrap();
    let done = engine.finished(&tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    let error = done.error.unwrap_or_default();
    for part in ["make", "1001 items on port main", "1000", "ItemWriter"] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    let detail = engine.run(&tenant, run).await.unwrap();
    let make = detail
        .nodes
        .iter()
        .find(|n| n.node_id.as_str() == "make")
        .unwrap();
    assert_eq!(make.status, NodeStatus::Failed);
    assert_eq!(make.attempt, 1, "the same output would be refused again");
    assert!(make.output.is_none(), "none of the 1,001 items is stored");
    assert_eq!(
        make.error.as_ref().map(|e| e.details().clone()),
        Some(json!({"port": "main", "items": 1_001, "limit": 1_000}))
    );
    assert!(detail.output("read").is_none(), "the node after never ran");

    // At the limit, the items go through.
    let (engine, workflow) = two_nodes_built(Emit(1_000), Count, |b| b.max_port_items(1_000)).await;
    let run = engine.start(&workflow, json!({})).await.unwrap();
    let done = engine.finished(&tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let detail = engine.run(&tenant, run).await.unwrap();
    assert_eq!(
        detail.output("read").unwrap().main_items()[0]["count"],
        1_000
    );
}

#[tokio::test]
async fn a_run_started_with_more_items_than_a_port_holds_is_refused_and_not_stored() {
    let (engine, workflow) = two_nodes_built(Count, Count, |b| b.max_port_items(10)).await;
    let tenant = workflow.tenant().clone();
    let items: Vec<_> = (0..11).map(|n| json!({ "n": n })).collect();
    let refused = engine.start(&workflow, json!(items)).await;
    assert_eq!(
        refused,
        Err(Error::TooManyItems {
            workflow: workflow.id().clone(),
            items: 11,
            limit: 10
        })
    );
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("max_port_items"), "{message}");
    let stored = engine.runs(&tenant, &RunFilter::default()).await.unwrap();
    assert!(stored.is_empty(), "no run was stored: {stored:?}");
    let fits: Vec<_> = (0..10).map(|n| json!({ "n": n })).collect();
    let run = engine.start(&workflow, json!(fits)).await.unwrap();
    let done = engine.finished(&tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
}

// The engine's default limit holds for lists in memory, not for items by
// reference: `Many` writes twice the limit through `ItemWriter`.
const _: () = assert!(200_000 > DEFAULT_MAX_PORT_ITEMS);

#[tokio::test]
async fn a_large_item_set_flows_as_a_stream_of_items_by_reference() {
    let detail = run_two(Many, Sum, None).await;
    let total = &detail.output("read").unwrap().main_items()[0];
    assert_eq!(total["count"], 200_000);
    assert_eq!(total["sum"], json!(199_999u64 * 200_000 / 2));
    assert_eq!(total["mediaType"], ITEMS_MEDIA_TYPE);
    let records = serde_json::to_string(&detail.nodes).unwrap();
    assert!(
        records.len() < 4_000,
        "the records hold one reference, not 200,000 items"
    );
}
