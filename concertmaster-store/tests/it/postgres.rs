//! `PostgresStore`: the conformance suite against a real PostgreSQL server.

concertmaster_core::backend_conformance!(crate::support::fresh_postgres());

use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    node::NodeCategory, Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome,
    NodeRegistry, Ports, RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::json;

/// A throwaway PostgreSQL cluster of this test's own, so that restarting it
/// disturbs nobody else; stopped and removed on drop.
struct Cluster {
    url: String,
    data: String,
    pg_ctl: Vec<String>,
}

impl Cluster {
    fn start() -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres-for-tests");
        let out = std::process::Command::new("bash")
            .arg(script)
            .env("CONCERTMASTER_PG_THROWAWAY", "1")
            .output()
            .expect("scripts/postgres-for-tests runs");
        assert!(
            out.status.success(),
            "could not start a throwaway cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}='")))
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or_else(|| panic!("{name} missing from: {text}"))
                .to_string()
        };
        Self {
            url: value("CONCERTMASTER_POSTGRES_URL"),
            data: value("CONCERTMASTER_PG_CLUSTER"),
            pg_ctl: value("CONCERTMASTER_PG_CTL")
                .split(' ')
                .map(str::to_string)
                .collect(),
        }
    }

    fn pg_ctl(&self, args: &[&str]) {
        let status = std::process::Command::new(&self.pg_ctl[0])
            .args(&self.pg_ctl[1..])
            .args(["-D", &self.data])
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl {args:?} failed");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.pg_ctl[0])
            .args(&self.pg_ctl[1..])
            .args(["-D", &self.data, "stop", "-m", "immediate"])
            .stdout(std::process::Stdio::null())
            .status();
        if let Some(dir) = std::path::Path::new(&self.data).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Takes a moment, so runs are in flight when the server goes away.
struct Slow;

#[async_trait]
impl Node for Slow {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(NodeOutcome::Done(input))
    }
}

/// An engine on `store` with the `slow_start` trigger and `slow` step.
async fn slow_engine(store: concertmaster_store::PostgresStore) -> Engine {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(
            NodeDescriptor::new("slow_start", NodeCategory::Trigger),
            Slow,
        )
        .expect("registers");
    registry
        .register_node(NodeDescriptor::new("slow", NodeCategory::Transform), Slow)
        .expect("registers");
    Engine::builder()
        .store(store)
        .registry(registry)
        .build()
        .await
        .expect("builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_complete_across_a_server_restart() {
    let cluster = Cluster::start();
    let store = concertmaster_store::PostgresStore::connect_with_pool_size(&cluster.url, 4)
        .await
        .expect("connects");
    let engine = slow_engine(store).await;
    let nodes: Vec<_> = (0..8)
        .map(|i| json!({"id": format!("n{i}"), "type": if i == 0 { "slow_start" } else { "slow" }}))
        .collect();
    let edges: Vec<_> = (1..8)
        .map(|i| json!({"source": format!("n{}", i - 1), "target": format!("n{i}")}))
        .collect();
    let def = WorkflowDefinition::from_value(
        json!({"id": "slow", "name": "Slow", "nodes": nodes, "edges": edges}),
    )
    .expect("parses");
    let tenant = TenantId::new("acme");
    let workflow = engine.publish(&tenant, def).await.expect("publishes");
    let mut runs = Vec::new();
    for _ in 0..10 {
        runs.push(engine.start(&workflow, json!({})).await.expect("starts"));
    }

    tokio::time::sleep(Duration::from_millis(150)).await;
    // Fast shutdown ends every connection; for three seconds nothing
    // answers; then the server is back and the engine must reconnect.
    cluster.pg_ctl(&["stop", "-m", "fast", "-w"]);
    let outage = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.pg_ctl(&["start", "-w", "-l", &format!("{}.log", cluster.data)]);

    for run in runs {
        let done = tokio::time::timeout(Duration::from_secs(60), engine.finished(&tenant, run))
            .await
            .expect("the run completes after the restart")
            .expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
        let detail = engine.run(&tenant, run).await.expect("detail");
        assert_eq!(detail.nodes.len(), 8);
    }
    assert!(outage.elapsed() >= Duration::from_secs(3));
    engine.shutdown();
}

/// With a pool of one connection the group commit's writer gives it back
/// after every group: runs still complete, and reads still get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_connection_is_shared_with_the_writer() {
    let url = crate::support::fresh_postgres_url().await;
    let store = concertmaster_store::PostgresStore::connect_with_pool_size(&url, 1)
        .await
        .expect("connects");
    let engine = slow_engine(store).await;
    let def = WorkflowDefinition::from_value(json!({
        "id": "one", "name": "One",
        "nodes": [{"id": "a", "type": "slow"}, {"id": "b", "type": "slow"}],
        "edges": [{"source": "a", "target": "b"}]
    }))
    .expect("parses");
    let tenant = TenantId::new("acme");
    let workflow = engine.publish(&tenant, def).await.expect("publishes");
    for _ in 0..3 {
        let run = engine.start(&workflow, json!({})).await.expect("starts");
        let done = tokio::time::timeout(Duration::from_secs(30), engine.finished(&tenant, run))
            .await
            .expect("the run completes with one connection")
            .expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
        let read = tokio::time::timeout(Duration::from_secs(10), engine.run(&tenant, run))
            .await
            .expect("a read gets the connection")
            .expect("reads");
        assert_eq!(read.run.status, RunStatus::Succeeded);
    }
}

/// The store reads the server's `synchronous_commit` at connect and says
/// whether commits are durable: on by default, not when a role, database
/// or connection turned it off.
#[tokio::test]
async fn synchronous_commit_is_read_at_connect() {
    let url = crate::support::fresh_postgres_url().await;
    let store = concertmaster_store::PostgresStore::connect_with_pool_size(&url, 2)
        .await
        .expect("connects");
    assert_ne!(store.synchronous_commit(), "off");
    assert!(store.commits_are_durable());

    let off = format!("{url}%20-c%20synchronous_commit%3Doff");
    let store = concertmaster_store::PostgresStore::connect_with_pool_size(&off, 2)
        .await
        .expect("connects");
    assert_eq!(store.synchronous_commit(), "off");
    assert!(
        !store.commits_are_durable(),
        "a server that acknowledges commits before they are on disk is flagged"
    );
}

/// Waits for `<prefix>:<run>`, which the test delivers from outside.
struct AskFor(&'static str);

#[async_trait]
impl Node for AskFor {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        match ctx.resumed() {
            None => Ok(NodeOutcome::suspend(
                concertmaster_core::node::Suspend::until_event(format!(
                    "{}:{}",
                    self.0,
                    ctx.run_id()
                )),
            )),
            Some(_) => Ok(NodeOutcome::Done(input)),
        }
    }
}

/// Runs waiting on two keys at once, each answered at a random moment
/// around its suspension by concurrent callers: a delivery takes its run's
/// lease in its own transaction when the lease row is free, leaves it for
/// a claim of its own when a suspension holds the row, and so never
/// deadlocks with one; no answer is lost and every run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_racing_the_suspensions_of_a_run_are_never_lost() {
    let store = crate::support::fresh_postgres().await;
    let mut registry = NodeRegistry::new();
    registry
        .register_node(
            NodeDescriptor::new("begin", NodeCategory::Trigger),
            crate::support::Pass,
        )
        .expect("registers");
    for (kind, prefix) in [("ask_a", "a"), ("ask_b", "b")] {
        registry
            .register_node(
                NodeDescriptor::new(kind, NodeCategory::Logic),
                AskFor(prefix),
            )
            .expect("registers");
    }
    let engine = Engine::builder()
        .store(store)
        .registry(registry)
        .build()
        .await
        .expect("builds");
    let def = WorkflowDefinition::from_value(json!({
        "id": "two-asks", "name": "Two asks",
        "nodes": [{"id": "begin", "type": "begin"}, {"id": "a", "type": "ask_a"}, {"id": "b", "type": "ask_b"}],
        "edges": [{"source": "begin", "target": "a"}, {"source": "begin", "target": "b"}]
    }))
    .expect("parses");
    let tenant = TenantId::new("acme");
    let workflow = engine.publish(&tenant, def).await.expect("publishes");
    let mut runs = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..150 {
        let run = engine.start(&workflow, json!({})).await.expect("starts");
        runs.push(run);
        for prefix in ["a", "b"] {
            let (engine, tenant) = (engine.clone(), tenant.clone());
            let pause = Duration::from_micros(fastrand::u64(0..3_000));
            answers.push(tokio::spawn(async move {
                tokio::time::sleep(pause).await;
                engine
                    .resume(
                        &tenant,
                        &format!("{prefix}:{run}"),
                        json!({ "from": prefix }),
                    )
                    .await
            }));
        }
    }
    for answer in answers {
        answer
            .await
            .expect("the caller finishes")
            .expect("every answer is taken or held, none refused");
    }
    for run in runs {
        let done = tokio::time::timeout(Duration::from_secs(60), engine.finished(&tenant, run))
            .await
            .expect("every run finishes")
            .expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    }
    assert!(engine
        .held_wakeups(&tenant)
        .await
        .expect("reads")
        .is_empty());
    engine.shutdown();
}
