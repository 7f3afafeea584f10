//! Lease renewal never waits behind timers: 20,000 runs whose timers come
//! due at once, two engines on one Postgres with a 2 s lease. Firing the
//! timers takes many times the lease, yet no engine loses a run it drives
//! to the other (each run's lease epoch ends at 2: its start, then the one
//! claim of the engine it woke in).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use concertmaster_core::{
    Clock, Engine, ManualClock, Node, NodeCategory, NodeContext, NodeDescriptor, NodeError,
    NodeOutcome, NodeRegistry, Ports, RunFilter, RunStatus, RunStore, Suspend, TenantId,
    WorkflowDefinition,
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

/// An engine with room for every run, so that a run is claimed exactly
/// once when it wakes (an engine without room gives a run back, which
/// moves its epoch on too).
async fn engine(
    store: &concertmaster_store::PostgresStore,
    clock: &ManualClock,
    runs: usize,
) -> Engine {
    let mut registry = NodeRegistry::new();
    registry
        .register_node(NodeDescriptor::new("hour", NodeCategory::Logic), Hour)
        .expect("registers");
    Engine::builder()
        .store(store.clone())
        .registry(registry)
        .clock(clock.clone())
        .lease_ttl(Duration::from_secs(2))
        .max_active_runs(runs)
        .recovery_interval(Duration::from_millis(200))
        .timer_poll_interval(Duration::from_millis(100))
        .build()
        .await
        .expect("builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_every_lease_while_twenty_thousand_timers_fire() {
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
    let first = engine(&store, &clock, runs).await;
    let second = engine(&store, &clock, runs).await;
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
    let ticking = {
        let clock = clock.clone();
        tokio::spawn(async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                clock.advance(last.elapsed());
                last = Instant::now();
            }
        })
    };
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
    ticking.abort();

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
    assert_eq!(
        epochs,
        vec![(2, runs as i64)],
        "every run was claimed once when it woke, and never taken over"
    );
    assert!(
        firing > Duration::from_secs(2),
        "firing took longer than a lease, or the test proves nothing: {firing:?}"
    );
}
