//! A run survives its engine: a new engine on the same store continues it.

use std::sync::Arc;
use std::time::Duration;

use concertmaster_core::{
    clock::ManualClock, run::NodeStatus, Engine, InMemoryStore, RunStatus, TenantId,
    WorkflowDefinition,
};
use serde_json::json;

use crate::support::{registry, workflow, Log};

/// An engine whose leases run out quickly, so that the next engine takes
/// over the runs of one that stopped without waiting long.
async fn engine_on(store: &InMemoryStore, log: &Arc<Log>) -> Engine {
    Engine::builder()
        .store(store.clone())
        .registry(registry(log))
        .lease_ttl(Duration::from_millis(300))
        .recovery_interval(Duration::from_millis(50))
        .build()
        .await
        .expect("engine builds")
}

/// An engine on `store` reading time from `clock`.
async fn engine_with_clock(store: &InMemoryStore, log: &Arc<Log>, clock: &ManualClock) -> Engine {
    Engine::builder()
        .store(store.clone())
        .registry(registry(log))
        .clock(clock.clone())
        .build()
        .await
        .expect("engine builds")
}

fn interrupted_workflow() -> WorkflowDefinition {
    WorkflowDefinition::from_value(workflow(
        "interrupted",
        &[
            ("start", "start", json!({})),
            ("slow", "pass", json!({"pauseMs": 400})),
            ("after", "pass", json!({})),
        ],
        &[("start", "slow"), ("slow", "after")],
    ))
    .expect("parses")
}

#[tokio::test]
async fn a_run_interrupted_mid_node_is_resumed_by_the_next_engine() {
    let store = InMemoryStore::new();
    let tenant = TenantId::new("acme");
    let first_log = Arc::new(Log::default());
    let first = engine_on(&store, &first_log).await;
    let wf = first
        .publish(&tenant, interrupted_workflow())
        .await
        .expect("publishes");
    let run = first.start(&wf, json!({"n": 1})).await.expect("starts");
    while first_log.running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.shutdown();
    drop(first);
    let stored = store_run_status(&store, &tenant, run).await;
    assert_eq!(
        stored,
        RunStatus::Running,
        "the stopped engine left the run in flight"
    );

    let second_log = Arc::new(Log::default());
    let second = engine_on(&store, &second_log).await;
    let done = second.finished(&tenant, run).await.expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(
        second_log.order(),
        ["slow", "after"],
        "start's committed result is reused, not re-run"
    );
    let detail = second.run(&tenant, run).await.expect("detail");
    let slow = detail.node("slow").expect("slow ran");
    assert_eq!((slow.status, slow.attempt), (NodeStatus::Succeeded, 2));
    assert_eq!(
        first_log.keys.lock().expect("lock")[1],
        second_log.keys.lock().expect("lock")[0],
        "the re-executed node sees the same idempotency key"
    );
}

#[test]
fn a_run_survives_its_runtime_being_torn_down() {
    let store = InMemoryStore::new();
    let tenant = TenantId::new("acme");
    let log = Arc::new(Log::default());
    let run = {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let engine = engine_on(&store, &log).await;
            let wf = engine
                .publish(&tenant, interrupted_workflow())
                .await
                .expect("publishes");
            let run = engine.start(&wf, json!({})).await.expect("starts");
            while log.running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            run
        })
        // The runtime is dropped here with the node mid-attempt, as in a crash.
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = engine_on(&store, &Arc::new(Log::default())).await;
        let done = engine.finished(&tenant, run).await.expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded);
    });
}

#[tokio::test]
async fn a_waiting_run_is_resumed_through_another_engine() {
    let store = InMemoryStore::new();
    let tenant = TenantId::new("acme");
    let clock = ManualClock::default();
    let log = Arc::new(Log::default());
    let first = engine_with_clock(&store, &log, &clock).await;
    let def = WorkflowDefinition::from_value(workflow(
        "waits",
        &[
            ("start", "start", json!({})),
            ("ask", "await", json!({"prefix": "form"})),
            ("pause", "delay", json!({"seconds": 86400})),
        ],
        &[("start", "ask"), ("ask", "pause")],
    ))
    .expect("parses");
    let wf = first.publish(&tenant, def).await.expect("publishes");
    let run = first.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        first.settled(&tenant, run).await.expect("settles").status,
        RunStatus::Waiting
    );
    first.shutdown();
    drop(first);

    let second = engine_with_clock(&store, &log, &clock).await;
    second
        .resume(&tenant, &format!("form:{run}"), json!({"ok": true}))
        .await
        .expect("resumes");
    assert_eq!(
        second.settled(&tenant, run).await.expect("settles").status,
        RunStatus::Waiting
    );
    second.shutdown();
    drop(second);

    // A day later, a third engine fires the durable timer the second one set.
    clock.advance(Duration::from_secs(86_401));
    let third = engine_with_clock(&store, &log, &clock).await;
    assert_eq!(third.fire_due_timers().await.expect("fires"), 1);
    assert_eq!(
        third.finished(&tenant, run).await.expect("finishes").status,
        RunStatus::Succeeded
    );
    assert_eq!(log.attempts("start"), 1, "nothing committed ran twice");
}

async fn store_run_status(
    store: &InMemoryStore,
    tenant: &TenantId,
    run: concertmaster_core::RunId,
) -> RunStatus {
    use concertmaster_core::store::RunStore;
    store
        .run(tenant, run)
        .await
        .expect("reads")
        .expect("run stored")
        .status
}

#[tokio::test]
async fn a_stopped_engine_refuses_work_instead_of_hanging() {
    let store = InMemoryStore::new();
    let tenant = TenantId::new("acme");
    let log = Arc::new(Log::default());
    let engine = engine_on(&store, &log).await;
    let wf = engine
        .publish(&tenant, interrupted_workflow())
        .await
        .expect("publishes");
    let run = engine.start(&wf, json!({})).await.expect("starts");
    engine.shutdown();
    use concertmaster_core::Error;
    assert!(matches!(
        engine.settled(&tenant, run).await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        engine.cancel(&tenant, run, "x").await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        engine.start(&wf, json!({})).await,
        Err(Error::ShutDown)
    ));
    assert!(matches!(
        engine.resume(&tenant, "k", json!({})).await,
        Err(Error::ShutDown)
    ));
}

#[tokio::test]
async fn a_timer_fires_once_across_engines() {
    let store = InMemoryStore::new();
    let clock = ManualClock::default();
    let log = Arc::new(Log::default());
    let (first, second) = (
        engine_with_clock(&store, &log, &clock).await,
        engine_with_clock(&store, &log, &clock).await,
    );
    let tenant = TenantId::new("acme");
    let def = WorkflowDefinition::from_value(workflow(
        "timer",
        &[
            ("start", "start", json!({})),
            ("wait", "delay", json!({"seconds": 60})),
        ],
        &[("start", "wait")],
    ))
    .expect("parses");
    let wf = first.publish(&tenant, def).await.expect("publishes");
    let run = first.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        first.settled(&tenant, run).await.expect("settles").status,
        RunStatus::Waiting
    );

    clock.advance(Duration::from_secs(61));
    let (a, b) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    assert_eq!(
        a.expect("fires") + b.expect("fires"),
        1,
        "one engine fires the timer"
    );
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let run = first.run(&tenant, run).await.expect("reads").run;
            if run.status.is_terminal() {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the run ends");
    assert_eq!(done.status, RunStatus::Succeeded);
    assert_eq!(log.attempts("wait"), 2, "suspended once, woken once");
}

/// Waits, on its first execution only, until the test lets it go: an
/// engine stalled in the middle of a node.
#[derive(Clone)]
struct Stall {
    first: Arc<std::sync::atomic::AtomicBool>,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl concertmaster_core::Node for Stall {
    async fn execute(
        &self,
        _: &concertmaster_core::NodeContext,
        input: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        if self.first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
        Ok(concertmaster_core::NodeOutcome::Done(input))
    }
}

/// An engine that stalls past its lease (here: its node hangs and its
/// clock is an hour behind, so it renews nothing in time) loses the run to
/// another engine; when it comes back, its first write is fenced: refused,
/// counted, and the stale engine stops driving the run without changing
/// anything the new one did.
#[test]
fn a_stalled_engine_is_fenced_when_it_comes_back() {
    use concertmaster_core::{clock::Clock, node::NodeCategory, NodeDescriptor};
    use metrics_util::debugging::DebuggingRecorder;

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // One thread: every task of both engines records into this recorder.
    let _recording = metrics::set_default_local_recorder(&recorder);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = InMemoryStore::new();
        let tenant = TenantId::new("acme");
        let log = Arc::new(Log::default());
        let (entered, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let stall = Stall {
            first: Arc::new(true.into()),
            entered: Arc::clone(&entered),
            release: Arc::clone(&release),
        };
        let registry = || {
            let mut reg = registry(&log);
            reg.register_node(
                NodeDescriptor::new("stall", NodeCategory::Transform),
                stall.clone(),
            )
            .expect("registers");
            reg
        };
        let stale_clock = ManualClock::default();
        let stale = Engine::builder()
            .store(store.clone())
            .registry(registry())
            .clock(stale_clock.clone())
            .lease_ttl(Duration::from_secs(3_600))
            .build()
            .await
            .expect("builds");
        let def = WorkflowDefinition::from_value(workflow(
            "stalls",
            &[
                ("start", "start", json!({})),
                ("slow", "stall", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
            ],
            &[("start", "slow"), ("slow", "ask")],
        ))
        .expect("parses");
        let wf = stale.publish(&tenant, def).await.expect("publishes");
        let run = stale.start(&wf, json!({})).await.expect("starts");
        entered.notified().await;

        // Two hours on, another engine finds the lease expired and takes the run.
        let taker_clock = ManualClock::new(stale_clock.now() + chrono::Duration::hours(2));
        let taker = Engine::builder()
            .store(store.clone())
            .registry(registry())
            .clock(taker_clock)
            .recovery_interval(Duration::from_millis(20))
            .build()
            .await
            .expect("builds");
        let waiting = taker.settled(&tenant, run).await.expect("settles");
        assert_eq!(
            waiting.status,
            RunStatus::Waiting,
            "the taker drove the run to its wait"
        );
        let before = taker.run(&tenant, run).await.expect("detail");
        let slow = before.node("slow").expect("slow ran");
        assert_eq!((slow.status, slow.attempt), (NodeStatus::Succeeded, 2));

        // The stalled engine comes back and commits its stale attempt.
        release.notify_one();
        // A snapshot hands over what was counted since the last one.
        let fenced_since = || {
            snapshotter
                .snapshot()
                .into_vec()
                .into_iter()
                .filter(|(key, ..)| {
                    key.key().name() == concertmaster_core::telemetry::FENCED_WRITES_TOTAL
                })
                .map(|(.., value)| match value {
                    metrics_util::debugging::DebugValue::Counter(n) => n,
                    _ => 0,
                })
                .sum::<u64>()
        };
        let mut fenced = 0;
        for _ in 0..500 {
            fenced += fenced_since();
            if fenced > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(fenced > 0, "the stale write was never fenced");
        tokio::time::sleep(Duration::from_millis(100)).await;
        fenced += fenced_since();
        assert_eq!(fenced, 1, "one write fenced, then the stale driver stopped");
        let after = taker.run(&tenant, run).await.expect("detail");
        assert_eq!(after.run, before.run, "the run is as the taker left it");
        assert_eq!(
            after.nodes, before.nodes,
            "every record is as the taker left it"
        );

        taker
            .resume(&tenant, &format!("form:{run}"), json!({"ok": true}))
            .await
            .expect("resumes");
        let done = taker.finished(&tenant, run).await.expect("finishes");
        assert_eq!(done.status, RunStatus::Succeeded);
        assert_eq!(fenced_since(), 0, "nothing more was fenced");
    });
}
