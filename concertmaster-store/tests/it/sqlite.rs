//! `SqliteStore`: the conformance suite, and runs that outlive their process.

use async_trait::async_trait;
use concertmaster_core::{
    Engine, Node, NodeCategory, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry,
    Ports, RunStatus, Suspend, TenantId, WorkflowDefinition,
};
use concertmaster_store::SqliteStore;
use serde_json::json;

concertmaster_core::store_conformance!(crate::support::fresh_sqlite());

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
