//! `SqliteStore`: the conformance suite, and runs that outlive their process.

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, Suspend},
    Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunStatus, TenantId, WorkflowDefinition,
};
use concertmaster_store::SqliteStore;
use serde_json::json;

use crate::support::Pass;

concertmaster_core::backend_conformance!(crate::support::fresh_sqlite());

/// Waits for `answer:<run>`, then passes the answer on.
struct Ask;

#[async_trait]
impl Node for Ask {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let Some(resumed) = ctx.resumed() else {
            return Ok(NodeOutcome::suspend(Suspend::until_event(format!(
                "answer:{}",
                ctx.run_id()
            ))));
        };
        let mut items = input.take("main");
        for item in &mut items {
            item.insert("answer".into(), resumed.wakeup_payload().clone());
        }
        Ok(NodeOutcome::main(items))
    }
}

async fn engine_on(path: &std::path::Path) -> Engine {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("ask", NodeCategory::Collection), Ask)
        .expect("registers");
    let store = SqliteStore::open(path).await.expect("opens");
    Engine::builder()
        .store(store)
        .registry(registry)
        .build()
        .await
        .expect("builds")
}

#[tokio::test]
async fn a_waiting_run_continues_after_the_file_is_reopened() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("workflows.db");
    let tenant = TenantId::new("acme");
    let run = {
        let engine = engine_on(&path).await;
        let def = WorkflowDefinition::from_value(json!({
            "id": "ask", "name": "Ask", "nodes": [{"id": "ask", "type": "ask"}]
        }))
        .expect("parses");
        let workflow = engine.publish(&tenant, def).await.expect("publishes");
        let run = engine
            .start(&workflow, json!({"supplier": "ACME"}))
            .await
            .expect("starts");
        assert_eq!(
            engine.settled(&tenant, run).await.expect("settles").status,
            RunStatus::Waiting
        );
        engine.shutdown();
        run
    };

    let engine = engine_on(&path).await;
    engine
        .resume(&tenant, &format!("answer:{run}"), json!("yes"))
        .await
        .expect("the wait was kept in the file");
    let done = engine.finished(&tenant, run).await.expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
    let detail = engine.run(&tenant, run).await.expect("detail");
    let out = &detail.output("ask").expect("ask finished").main_items()[0];
    assert_eq!(out["supplier"], "ACME");
    assert_eq!(out["answer"], "yes");
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    drop(SqliteStore::open(&path).await.expect("opens"));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw connection");
    sqlx::query(
        "INSERT INTO concertmaster_migrations (version, description) VALUES (999, 'future')",
    )
    .execute(&pool)
    .await
    .expect("inserts");
    pool.close().await;
    let err = SqliteStore::open(&path)
        .await
        .expect_err("a newer schema is refused");
    let message = err.to_string();
    assert!(
        message.starts_with("the database is at schema version 999, newer than this build's ")
            && message.ends_with("; upgrade ConcertMaster"),
        "{message}"
    );
}

/// Reads the store again and again: each read holds the store's one
/// connection while it waits for SQLite.
struct BusyReader(SqliteStore);

#[async_trait]
impl Node for BusyReader {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        use concertmaster_core::store::RunStore;
        for _ in 0..200 {
            self.0
                .node_executions(ctx.tenant(), ctx.run_id())
                .await
                .map_err(|e| NodeError::fatal(e.to_string()))?;
        }
        Ok(NodeOutcome::Done(input))
    }
}

/// Emits nothing, so the node after it is skipped: a store write the run's
/// driver makes itself.
struct Nothing;

#[async_trait]
impl Node for Nothing {
    async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::Done(Ports::new()))
    }
}

/// The driver's own store calls (skipping a node, picking up a wake) wait
/// for the pool's one connection while a node execution of the same run may hold
/// it; the driver goes on polling its executions meanwhile. It once did
/// not, and the run hung until the pool's timeout.
#[tokio::test]
async fn a_node_using_the_store_does_not_starve_its_own_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("busy.db"))
        .await
        .expect("opens");
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("start", NodeCategory::Trigger), Pass)
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("busy", NodeCategory::Transform),
            BusyReader(store.clone()),
        )
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("nothing", NodeCategory::Transform),
            Nothing,
        )
        .expect("registers");
    let engine = Engine::builder()
        .store(store)
        .registry(registry)
        .build()
        .await
        .expect("builds");
    let tenant = TenantId::new("acme");
    let mut nodes = vec![json!({"id": "start", "type": "start"})];
    let mut edges = Vec::new();
    for i in 0..8 {
        nodes.push(json!({"id": format!("busy{i}"), "type": "busy"}));
        nodes.push(json!({"id": format!("quiet{i}"), "type": "nothing"}));
        nodes.push(json!({"id": format!("skipped{i}"), "type": "nothing"}));
        edges.push(json!({"source": "start", "target": format!("busy{i}")}));
        edges.push(json!({"source": "start", "target": format!("quiet{i}")}));
        edges.push(json!({"source": format!("quiet{i}"), "target": format!("skipped{i}")}));
    }
    let def = WorkflowDefinition::from_value(
        json!({"id": "busy", "name": "Busy", "nodes": nodes, "edges": edges}),
    )
    .expect("parses");
    let wf = engine.publish(&tenant, def).await.expect("publishes");
    for _ in 0..5 {
        let run = engine.start(&wf, json!({})).await.expect("starts");
        let done = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            engine.settled(&tenant, run),
        )
        .await
        .expect("settles well before the pool's 30 s timeout")
        .expect("settles");
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    }
}

/// A store opened plainly syncs every commit (`synchronous = FULL`, 2);
/// `Durability::Normal` is SQLite's `NORMAL` (1).
#[tokio::test]
async fn commits_are_synced_unless_normal_is_asked_for() {
    use concertmaster_store::Durability;
    let dir = tempfile::tempdir().expect("temp dir");
    let synchronous = |store: &SqliteStore| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(&pool)
                .await
                .expect("reads the pragma")
        }
    };
    let full = SqliteStore::open(dir.path().join("full.db"))
        .await
        .expect("opens");
    assert_eq!(full.durability(), Durability::Full);
    assert_eq!(synchronous(&full).await, 2, "FULL");
    let normal = SqliteStore::open_with(dir.path().join("normal.db"), Durability::Normal)
        .await
        .expect("opens");
    assert_eq!(normal.durability(), Durability::Normal);
    assert_eq!(synchronous(&normal).await, 1, "NORMAL");
    let url = format!("sqlite://{}", dir.path().join("url.db").display());
    let by_url = SqliteStore::connect(&url).await.expect("connects");
    assert_eq!(synchronous(&by_url).await, 2, "FULL through a URL too");
}
