//! Workloads shared by the criterion benchmarks beside this crate (the
//! `[[bench]]` targets) and by the peer comparison (`peers` binary): no-op
//! nodes, nodes that do a trivial computation, and the workflow shapes they
//! run in.

use std::sync::Arc;

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, Suspend, MAIN_PORT},
    workflow::PublishedWorkflow,
    Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports, RunId,
    RunStatus, Store, TenantId, WorkflowDefinition,
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

/// Emits, per item, one item holding `x + 1`: the trivial computation of
/// the peer comparison's steps (as n8n's Set node keeps only the fields it
/// sets).
struct AddOne;

#[async_trait]
impl Node for AddOne {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::main(add_to_x(&input, 1)))
    }
}

/// Per item of `input`'s main port, one item holding its `x` plus `add`.
fn add_to_x(input: &Ports, add: i64) -> Vec<concertmaster_core::Item> {
    input
        .main_items()
        .iter()
        .map(|item| {
            let x = item.get("x").and_then(Value::as_i64).unwrap_or(0);
            let mut out = concertmaster_core::Item::new();
            out.insert("x".into(), json!(x + add));
            out
        })
        .collect()
}

/// Joins: one item whose `x` is the sum of the `x` of all it was given.
struct Sum;

#[async_trait]
impl Node for Sum {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        // Read where the 1,000 edges left them, not copied into one list.
        let sum: i64 = input
            .items(MAIN_PORT)
            .filter_map(|item| item.get("x").and_then(Value::as_i64))
            .sum();
        let mut item = concertmaster_core::Item::new();
        item.insert("x".into(), json!(sum));
        Ok(NodeOutcome::main(vec![item]))
    }
}

/// Waits for the event [`wake_key`] of its run, then emits, per item, one
/// item whose `x` is the item's `x` plus the event's `x`: the step that
/// waits for a person.
struct WaitEvent;

#[async_trait]
impl Node for WaitEvent {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let Some(resumed) = ctx.resumed() else {
            return Ok(NodeOutcome::suspend(Suspend::until_event(wake_key(
                ctx.run_id(),
            ))));
        };
        let add = resumed
            .wakeup_payload()
            .get("x")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        Ok(NodeOutcome::main(add_to_x(&input, add)))
    }
}

/// The event key the `wait_event` node of run `run` waits on.
pub fn wake_key(run: RunId) -> String {
    format!("wake:{run}")
}

/// How many ended runs ConcertMaster's in-memory subject keeps
/// ([`InMemoryStore::keep_ended_runs`](concertmaster_core::InMemoryStore::keep_ended_runs)),
/// as a long-running host would: a bounded history, not every run.
pub const KEEP_ENDED_RUNS: usize = 1_000;

/// Node types `trigger`, `noop`, `tick`, `add_one`, `sum` and
/// `wait_event`.
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
        .register_node(
            NodeDescriptor::new("add_one", NodeCategory::Transform),
            AddOne,
        )
        .expect("benchmark node types register");
    registry
        .register_node(NodeDescriptor::new("sum", NodeCategory::Transform), Sum)
        .expect("benchmark node types register");
    registry
        .register_node(
            NodeDescriptor::new("wait_event", NodeCategory::Logic),
            WaitEvent,
        )
        .expect("benchmark node types register");
    registry
}

/// A trigger, then `steps` nodes in a row that each add one to `x`: started
/// with `{"x": 1}`, the last node emits `x = 1 + steps`.
pub fn add_chain(steps: usize) -> WorkflowDefinition {
    let mut nodes = vec![json!({"id": "start", "type": "trigger"})];
    let mut edges = Vec::new();
    let mut previous = "start".to_string();
    for i in 0..steps {
        let id = format!("s{i}");
        nodes.push(json!({"id": id, "type": "add_one"}));
        edges.push(json!({"source": previous, "target": id}));
        previous = id;
    }
    definition(
        json!({"id": format!("add-chain-{steps}"), "name": "add chain", "nodes": nodes, "edges": edges}),
    )
}

/// A trigger, a `wait_event` node (id `wait`), then an `add_one` node (id
/// `done`): started with `{"x": 1}` and resumed with `{"x": 1}`, the last
/// node emits `x = 3`.
pub fn wait_then_add() -> WorkflowDefinition {
    definition(json!({
        "id": "wait-then-add",
        "name": "wait for an event",
        "nodes": [
            {"id": "start", "type": "trigger"},
            {"id": "wait", "type": "wait_event"},
            {"id": "done", "type": "add_one"},
        ],
        "edges": [
            {"source": "start", "target": "wait"},
            {"source": "wait", "target": "done"},
        ],
    }))
}

/// A trigger fanning out to `width` nodes that each add one to `x`, joined
/// by a `sum` node (id `join`): started with `{"x": 1}`, it emits
/// `x = 2 * width`.
pub fn add_fan_out_in(width: usize) -> WorkflowDefinition {
    let mut nodes = vec![
        json!({"id": "start", "type": "trigger"}),
        json!({"id": "join", "type": "sum"}),
    ];
    let mut edges = Vec::new();
    for i in 0..width {
        nodes.push(json!({"id": format!("w{i}"), "type": "add_one"}));
        edges.push(json!({"source": "start", "target": format!("w{i}")}));
        edges.push(json!({"source": format!("w{i}"), "target": "join"}));
    }
    definition(
        json!({"id": format!("add-fan-{width}"), "name": "add fan", "nodes": nodes, "edges": edges}),
    )
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

/// A `PostgresStore` on the server at `url`, in `schema`, created empty
/// (dropped first if a crashed run left it): measurements start on no
/// leftovers. 16 pooled connections.
pub async fn postgres_store(url: &str, schema: &str) -> Result<Arc<dyn Store>, String> {
    let admin = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    for statement in [
        format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        format!("CREATE SCHEMA {schema}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&admin)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    let url = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let store = concertmaster_store::PostgresStore::connect_with_pool_size(&url, 16)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// Drops `schema` on the server at `url`, so that no autovacuum of a
/// benchmark's leftovers runs beside the next measurement.
pub async fn drop_postgres_schema(url: &str, schema: &str) {
    if let Ok(admin) = sqlx::PgPool::connect(url).await {
        let statement = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
        let _ = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&admin)
            .await;
    }
}

/// Whether the server at `url` runs autovacuum; `None` when it cannot be
/// asked.
pub async fn postgres_autovacuum(url: &str) -> Option<bool> {
    let admin = sqlx::PgPool::connect(url).await.ok()?;
    let setting: String = sqlx::query_scalar("SHOW autovacuum")
        .fetch_one(&admin)
        .await
        .ok()?;
    Some(setting == "on")
}

/// Runs `VACUUM (ANALYZE)` on every table of `schema` on the server at
/// `url`: the upkeep autovacuum does on a server where it is on. Without
/// it, dead row versions and the statistics of empty tables pile up, and
/// every write slows with the rows written before (the 3-step latency on
/// Postgres tripled over three rounds).
pub async fn vacuum_postgres_schema(url: &str, schema: &str) -> Result<(), String> {
    let admin = sqlx::PgPool::connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = $1")
            .bind(schema)
            .fetch_all(&admin)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
    for table in tables {
        let statement = format!("VACUUM (ANALYZE) {schema}.\"{table}\"");
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&admin)
            .await
            .map_err(|e| format!("{url}: VACUUM {schema}.{table}: {e}"))?;
    }
    Ok(())
}

/// The runtime every bench runs its engine on: two workers, as a host
/// service on this machine's two cores would have.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The time of `iters` runs of `workflow` on `trigger`, one after another,
/// each waited for until it settles (and checked to have succeeded), from a
/// task on the runtime's workers, as a request handler in a host service
/// would run them, not on the thread that blocks on the runtime.
pub async fn time_runs(
    engine: Engine,
    tenant: TenantId,
    workflow: PublishedWorkflow,
    trigger: Value,
    iters: u64,
) -> std::time::Duration {
    let timed = tokio::spawn(async move {
        let began = std::time::Instant::now();
        for _ in 0..iters {
            let run = engine
                .start(&workflow, trigger.clone())
                .await
                .expect("starts");
            let run = engine.settled(&tenant, run).await.expect("settles");
            assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        }
        began.elapsed()
    });
    timed.await.expect("benchmark task")
}
