//! Crash safety, tested: a worker process drives a few hundred runs and is
//! killed with SIGKILL at random moments, again and again; each new worker
//! resumes on the same database. At the end every run has completed, every
//! node result is there, and every side effect was made under one
//! idempotency key per (run, node, item).
//!
//! The worker is this same test binary, started with `--ignored --exact
//! crash::worker` and its job in environment variables.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use concertmaster_core::{
    node::NodeCategory,
    run::{NodeStatus, RunFilter},
    Engine, Error, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunStatus, Store, TenantId, WorkflowDefinition, WorkflowId,
};
use serde_json::json;

use crate::support::{FanOut, Pass};

const RUNS: usize = 300;
const KILLS: usize = 32;
const ITEMS_PER_RUN: usize = 3;

/// The side effect: appends `run node item key` per item to a file, as an
/// ERP call would create a record, then takes a moment.
struct Effect {
    file: PathBuf,
    pause: Duration,
}

#[async_trait]
impl Node for Effect {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut lines = String::new();
        for (i, _) in input.main_items().iter().enumerate() {
            lines.push_str(&format!(
                "{} {} {i} {} {}\n",
                ctx.run_id(),
                ctx.node_id(),
                ctx.item_key(i),
                std::process::id()
            ));
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(|e| NodeError::retryable(e.to_string()))?;
        // One write per call: O_APPEND keeps it whole.
        file.write_all(lines.as_bytes())
            .map_err(|e| NodeError::retryable(e.to_string()))?;
        tokio::time::sleep(self.pause).await;
        Ok(NodeOutcome::Done(input))
    }
}

/// Streams `ITEMS_PER_RUN` items, one at a time, a moment apart.
struct StreamOut {
    pause: Duration,
}

#[async_trait]
impl Node for StreamOut {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        for i in 0..ITEMS_PER_RUN {
            let item = json!({ "item": i })
                .as_object()
                .cloned()
                .unwrap_or_default();
            ctx.emit("main", item).await?;
            tokio::time::sleep(self.pause / 2).await;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }
}

/// `Effect` on a stream: the side effect of each item as it arrives,
/// under the key of its place in the stream, then the item goes on.
struct StreamEffect {
    file: PathBuf,
    pause: Duration,
}

#[async_trait]
impl Node for StreamEffect {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let mut i = 0;
        while let Some(item) = ctx.next_item().await? {
            let line = format!(
                "{} {} {i} {} {}\n",
                ctx.run_id(),
                ctx.node_id(),
                ctx.item_key(i),
                std::process::id()
            );
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.file)
                .and_then(|mut file| file.write_all(line.as_bytes()))
                .map_err(|e| NodeError::retryable(e.to_string()))?;
            tokio::time::sleep(self.pause).await;
            ctx.emit("main", item).await?;
            i += 1;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }

    fn join(&self) -> concertmaster_core::node::Join {
        concertmaster_core::node::Join::Stream
    }
}

fn registry(effects: &Path, pause: Duration) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("start", NodeCategory::Trigger), Pass)
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("fan_out", NodeCategory::Logic),
            FanOut(ITEMS_PER_RUN),
        )
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("effect", NodeCategory::Output),
            Effect {
                file: effects.to_path_buf(),
                pause,
            },
        )
        .expect("registers");
    registry
        .register_node(NodeDescriptor::new("done", NodeCategory::Transform), Pass)
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("stream_out", NodeCategory::Logic),
            StreamOut { pause },
        )
        .expect("registers");
    registry
        .register_node(
            NodeDescriptor::new("stream_effect", NodeCategory::Output),
            StreamEffect {
                file: effects.to_path_buf(),
                pause,
            },
        )
        .expect("registers");
    registry
}

/// The crash test's workflow; with `streams`, the fan-out streams its items
/// to the side effect, which runs while it does.
fn workflow(streams: bool) -> WorkflowDefinition {
    let (fan_out, effect) = if streams {
        ("stream_out", "stream_effect")
    } else {
        ("fan_out", "effect")
    };
    WorkflowDefinition::from_value(json!({
        "id": "crash", "name": "Crash test",
        "nodes": [
            {"id": "start", "type": "start"},
            {"id": "fan_out", "type": fan_out},
            {"id": "effect", "type": effect},
            {"id": "done", "type": "done"}
        ],
        "edges": [
            {"source": "start", "target": "fan_out"},
            {"source": "fan_out", "target": "effect"},
            {"source": "effect", "target": "done"}
        ]
    }))
    .expect("parses")
}

async fn open(db: &str) -> std::sync::Arc<dyn Store> {
    if let Some(path) = db.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        return std::sync::Arc::new(
            concertmaster_store::SqliteStore::open(path)
                .await
                .expect("opens"),
        );
        #[cfg(not(feature = "sqlite"))]
        panic!("{path}: built without the sqlite feature");
    }
    if let Some(url) = db.strip_prefix("postgres:") {
        #[cfg(feature = "postgres")]
        return std::sync::Arc::new(
            concertmaster_store::PostgresStore::connect_with_pool_size(url, 8)
                .await
                .expect("connects"),
        );
        #[cfg(not(feature = "postgres"))]
        panic!("{url}: built without the postgres feature");
    }
    panic!("unknown database {db}")
}

/// The worker: resumes what is in flight, starts the runs still missing
/// (unless told another worker does), and exits once all have succeeded (if
/// it is not killed first).
#[test]
#[ignore = "started by the crash tests as their worker process"]
fn worker() {
    let (Ok(db), Ok(effects)) = (
        std::env::var("CM_CRASH_DB"),
        std::env::var("CM_CRASH_EFFECTS"),
    ) else {
        panic!("the crash worker needs CM_CRASH_DB and CM_CRASH_EFFECTS");
    };
    let number = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = number("CM_CRASH_RUNS", RUNS as u64) as usize;
    let starts = number("CM_CRASH_STARTS", 1) == 1;
    let streams = number("CM_CRASH_STREAMS", 0) == 1;
    let pause = Duration::from_millis(number("CM_CRASH_EFFECT_MS", 40));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = Engine::builder()
            .shared_store(open(&db).await)
            .registry(registry(Path::new(&effects), pause))
            // Few at a time, so that the work outlasts the kills and
            // several workers share it.
            .max_concurrent_nodes(2)
            .max_active_runs(8)
            // A killed worker's runs are free again a second later.
            .lease_ttl(Duration::from_secs(1))
            .recovery_interval(Duration::from_millis(200))
            .build()
            .await
            .expect("engine builds");
        let tenant = TenantId::new("crash");
        if starts {
            let id = WorkflowId::new("crash");
            let published = match engine.workflow(&tenant, &id, None).await {
                Ok(published) => published,
                Err(Error::WorkflowNotFound { .. }) => engine
                    .publish(&tenant, workflow(streams))
                    .await
                    .expect("publishes"),
                Err(err) => panic!("{err}"),
            };
            let all = RunFilter::all().limit(runs * 2);
            let existing = engine.runs(&tenant, &all).await.expect("lists").len();
            for _ in existing..runs {
                engine.start(&published, json!({})).await.expect("starts");
            }
        }
        let done = RunFilter::status(RunStatus::Succeeded).limit(runs * 2);
        while engine.runs(&tenant, &done).await.expect("lists").len() < runs {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

fn spawn_worker(db: &str, effects: &Path, env: &[(&str, String)]) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    let mut command = Command::new(exe);
    command
        .args([
            "--ignored",
            "--exact",
            "crash::worker",
            "--test-threads=1",
            "--quiet",
        ])
        .env("CM_CRASH_DB", db)
        .env("CM_CRASH_EFFECTS", effects)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("worker starts")
}

fn wait_for_success(mut child: std::process::Child, limit: Duration) {
    let began = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("worker state") {
            assert!(status.success(), "a worker failed: {status}");
            return;
        }
        assert!(
            began.elapsed() < limit,
            "a worker did not finish in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Outcome {
    kills: usize,
    effect_lines: usize,
    re_executed: usize,
}

/// Starts workers on `db` (with `env`), kills `KILLS` of them at random
/// moments, lets the last one finish, then checks the database and the
/// effects file.
async fn crash_and_resume(db: &str, effects: &Path, env: &[(&str, String)]) -> Outcome {
    let mut kills = 0;
    for _ in 0..KILLS {
        let mut child = spawn_worker(db, effects, env);
        std::thread::sleep(Duration::from_millis(fastrand::u64(50..250)));
        if child.try_wait().expect("worker state").is_none() {
            // SIGKILL: no destructor, no flush, no goodbye.
            child.kill().expect("worker killed");
            kills += 1;
        }
        child.wait().expect("worker reaped");
    }
    wait_for_success(spawn_worker(db, effects, env), Duration::from_secs(120));

    let effects = check(db, effects, RUNS).await;
    Outcome {
        kills,
        effect_lines: effects.lines,
        re_executed: effects.lines - effects.by_item.len(),
    }
}

/// A side effect's (run, node, item).
type ItemId = (String, String, String);

/// Who made one item's side effect: the keys used and the processes.
#[derive(Default)]
struct Made {
    keys: HashSet<String>,
    by: HashSet<u32>,
}

/// What the side-effect file says: lines, and per item who made it.
struct Effects {
    lines: usize,
    by_item: HashMap<ItemId, Made>,
}

/// Checks that all `runs` runs succeeded with every node result kept, and
/// that every item's side effect was made under one key.
async fn check(db: &str, effects: &Path, runs: usize) -> Effects {
    let store = open(db).await;
    let tenant = TenantId::new("crash");
    let stored = store
        .runs(&tenant, &RunFilter::all().limit(runs * 2))
        .await
        .expect("lists");
    assert_eq!(
        stored.len(),
        runs,
        "exactly the runs asked for were started"
    );
    for run in &stored {
        assert_eq!(
            run.status,
            RunStatus::Succeeded,
            "run {} {:?}",
            run.id,
            run.error
        );
        let nodes = store.node_executions(&tenant, run.id).await.expect("reads");
        assert_eq!(nodes.len(), 4, "run {}: every node has its record", run.id);
        for node in &nodes {
            assert_eq!(
                node.status,
                NodeStatus::Succeeded,
                "run {} node {}",
                run.id,
                node.node_id
            );
            assert!(
                node.output.is_some(),
                "run {} node {}: result kept",
                run.id,
                node.node_id
            );
        }
        let done = nodes
            .iter()
            .find(|n| n.node_id.as_str() == "done")
            .expect("done ran");
        assert_eq!(
            done.output.as_ref().map(|o| o.main_items().len()),
            Some(ITEMS_PER_RUN),
            "run {}: no item lost",
            run.id
        );
    }

    let text = std::fs::read_to_string(effects).expect("effects file");
    let mut by_item: HashMap<ItemId, Made> = HashMap::new();
    let mut lines = 0;
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 5, "a whole line: {line:?}");
        lines += 1;
        let entry = by_item
            .entry((parts[0].into(), parts[1].into(), parts[2].into()))
            .or_default();
        entry.keys.insert(parts[3].into());
        entry.by.insert(parts[4].parse().expect("a pid"));
    }
    assert_eq!(
        by_item.len(),
        runs * ITEMS_PER_RUN,
        "every item's side effect happened"
    );
    for ((run, node, item), made) in &by_item {
        let keys = &made.keys;
        assert_eq!(
            keys.len(),
            1,
            "{run} {node} {item} was made under keys {keys:?}"
        );
    }
    Effects { lines, by_item }
}

fn report(backend: &str, outcome: &Outcome) {
    println!(
        "{backend}: {RUNS} runs completed after {} kills; {} side-effect lines for {} items, {} re-executed with their original key",
        outcome.kills,
        outcome.effect_lines,
        RUNS * ITEMS_PER_RUN,
        outcome.re_executed
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_repeated_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite:{}", dir.path().join("crash.db").display());
    let outcome = crash_and_resume(&db, &dir.path().join("effects.log"), &[]).await;
    report("sqlite", &outcome);
    assert!(
        outcome.kills >= 30,
        "only {} workers were killed",
        outcome.kills
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_repeated_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = crate::support::fresh_postgres_url().await;
    let outcome = crash_and_resume(
        &format!("postgres:{url}"),
        &dir.path().join("effects.log"),
        &[],
    )
    .await;
    report("postgres", &outcome);
    assert!(
        outcome.kills >= 30,
        "only {} workers were killed",
        outcome.kills
    );
}

/// The same with a stream: the fan-out streams its items to the side
/// effect, both running at once, and a kill lands mid-stream. A recovering
/// worker runs such a pair again from its producer; every item's effect is
/// still made under its one key, and `done` gets every item.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_streams_survive_repeated_sigkill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite:{}", dir.path().join("crash.db").display());
    let streams = [("CM_CRASH_STREAMS", "1".to_string())];
    let outcome = crash_and_resume(&db, &dir.path().join("effects.log"), &streams).await;
    report("sqlite, streaming", &outcome);
    assert!(
        outcome.kills >= 30,
        "only {} workers were killed",
        outcome.kills
    );
}

/// Three engine processes share 500 runs on one Postgres; one is killed
/// mid-way. Every run completes; the survivors took over the dead one's
/// runs once its leases expired; no effect was made twice by processes
/// that stayed alive (only the killed one's unfinished work was redone).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engines_share_the_runs_and_survive_losing_one() {
    const SHARED_RUNS: usize = 500;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("postgres:{}", crate::support::fresh_postgres_url().await);
    let effects = dir.path().join("effects.log");
    let env = |starts: bool| {
        vec![
            ("CM_CRASH_RUNS", SHARED_RUNS.to_string()),
            (
                "CM_CRASH_STARTS",
                if starts { "1" } else { "0" }.to_string(),
            ),
            ("CM_CRASH_EFFECT_MS", "10".to_string()),
        ]
    };
    let starter = spawn_worker(&db, &effects, &env(true));
    std::thread::sleep(Duration::from_millis(300));
    let mut doomed = spawn_worker(&db, &effects, &env(false));
    let survivor = spawn_worker(&db, &effects, &env(false));
    std::thread::sleep(Duration::from_millis(1500));
    let doomed_pid = doomed.id();
    let killed = doomed.try_wait().expect("worker state").is_none();
    assert!(
        killed,
        "the second engine finished before it could be killed; give it more work"
    );
    doomed.kill().expect("worker killed");
    doomed.wait().expect("worker reaped");
    wait_for_success(starter, Duration::from_secs(120));
    wait_for_success(survivor, Duration::from_secs(120));

    let effects = check(&db, &effects, SHARED_RUNS).await;
    let mut per_process: HashMap<u32, usize> = HashMap::new();
    let mut redone = 0;
    for ((run, node, item), made) in &effects.by_item {
        let pids = &made.by;
        for pid in pids {
            *per_process.entry(*pid).or_default() += 1;
        }
        if pids.len() > 1 {
            redone += 1;
            assert!(
                pids.contains(&doomed_pid),
                "{run} {node} {item} was made by two live engines {pids:?}"
            );
        }
    }
    assert!(
        per_process.len() >= 3,
        "all three engines did work: {per_process:?}"
    );
    println!(
        "postgres, 3 engines: {SHARED_RUNS} runs completed; items per process {per_process:?}; \
         {redone} items of the killed engine ({doomed_pid}) redone by the others"
    );
}
