//! Lease renewal never waits behind timers: 20,000 runs whose timers come
//! due at once, two engines on one Postgres with a 2 s lease. Firing the
//! timers takes many times the lease, yet no engine loses a lease of a run
//! it drives (`leases_lost_total`) or has a write fenced
//! (`fenced_writes_total`): no live run is taken over.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use concertmaster_core::{
    clock::{Clock, ManualClock},
    node::{NodeCategory, Suspend},
    run::RunFilter,
    store::RunStore,
    Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::json;

/// Sleeps an hour of engine time, durably.
struct Hour;

#[async_trait]
impl Node for Hour {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        match ctx.resumed() {
            Some(_) => Ok(NodeOutcome::Done(input)),
            None => Ok(NodeOutcome::suspend(Suspend::until_time(
                ctx.now() + chrono::Duration::hours(1),
            ))),
        }
    }
}

async fn engine(store: &concertmaster_store::PostgresStore, clock: &ManualClock) -> Engine {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("hour", NodeCategory::Logic), Hour)
        .expect("registers");
    Engine::builder()
        .store(store.clone())
        .registry(registry)
        .clock(clock.clone())
        .lease_ttl(Duration::from_secs(2))
        .recovery_interval(Duration::from_millis(200))
        .timer_poll_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("builds")
}

#[test]
fn renewal_keeps_every_lease_while_twenty_thousand_timers_fire() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("only this test installs a recorder");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(twenty_thousand_timers());
    // This test's tenant only: other tests of the binary may run engines.
    let counted = |name: &str| -> u64 {
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, ..)| {
                key.key().name() == name && key.key().labels().any(|l| l.value() == "timers")
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => n,
                _ => 0,
            })
            .sum()
    };
    use concertmaster_core::telemetry::{FENCED_WRITES_TOTAL, LEASES_LOST_TOTAL};
    let (lost, fenced) = (counted(LEASES_LOST_TOTAL), counted(FENCED_WRITES_TOTAL));
    println!("leases lost: {lost}, writes fenced: {fenced}");
    assert_eq!((lost, fenced), (0, 0), "no live run was taken over");
}

async fn twenty_thousand_timers() {
    let runs: usize = std::env::var("CONCERTMASTER_RENEWAL_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let url = crate::support::fresh_postgres_url().await;
    let store = concertmaster_store::PostgresStore::connect(&url)
        .await
        .expect("connects");
    let clock = ManualClock::default();
    let tenant = TenantId::new("timers");
    let first = engine(&store, &clock).await;
    let second = engine(&store, &clock).await;
    let workflow = first
        .publish(
            &tenant,
            WorkflowDefinition::from_value(json!({
                "id": "hour", "name": "An hour",
                "nodes": [{"id": "sleep", "type": "hour"}]
            }))
            .expect("parses"),
        )
        .await
        .expect("publishes");
    let began = Instant::now();
    for i in 0..runs {
        let engine = if i % 2 == 0 { &first } else { &second };
        engine.start(&workflow, json!({})).await.expect("starts");
    }
    let waiting = RunFilter::status(RunStatus::Waiting).limit(runs + 1);
    loop {
        let n = store.runs(&tenant, &waiting).await.expect("lists").len();
        if n == runs {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "{n} of {runs} waiting"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let started = began.elapsed();

    // Every timer comes due at once; engine time then runs with real time,
    // so a lease not renewed within 2 s expires.
    clock.advance(Duration::from_secs(3_600));
    // On a thread of its own: engine time must keep pace with real time
    // however busy the engines keep the runtime.
    let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (clock, ticking) = (clock.clone(), std::sync::Arc::clone(&ticking));
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while ticking.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
                let now = Instant::now();
                clock.advance(now - last);
                last = now;
            }
        });
    }
    let fired = Instant::now();
    let done = RunFilter::status(RunStatus::Succeeded).limit(runs + 1);
    loop {
        let n = store.runs(&tenant, &done).await.expect("lists").len();
        if n == runs {
            break;
        }
        assert!(
            fired.elapsed() < Duration::from_secs(600),
            "{n} of {runs} finished"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let firing = fired.elapsed();
    ticking.store(false, std::sync::atomic::Ordering::SeqCst);

    let admin = sqlx::PgPool::connect(&url).await.expect("connects");
    let epochs: Vec<(i64, i64)> =
        sqlx::query_as("SELECT epoch, count(*) FROM run_leases GROUP BY epoch ORDER BY epoch")
            .fetch_all(&admin)
            .await
            .expect("epochs");
    println!(
        "{runs} runs started in {:.1} s; their timers fired and the runs finished in {:.1} s \
         (engine time {}), lease epochs {epochs:?}",
        started.as_secs_f64(),
        firing.as_secs_f64(),
        clock.now()
    );
    assert!(
        firing > Duration::from_secs(2),
        "firing took longer than a lease, or the test proves nothing: {firing:?}"
    );
}
