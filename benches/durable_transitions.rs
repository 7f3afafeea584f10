//! Run with: cargo bench -p concertmaster-benches --bench durable_transitions
//!
//! Durable node completions per second on SQLite and on Postgres: 16 runs
//! in parallel of a 40-node chain, and one 1,000-wide fan-out/fan-in run,
//! every step committed to the database (the steps of these nodes, which
//! have no side effects, with the run's next write). Postgres is the server in
//! CONCERTMASTER_POSTGRES_URL (see scripts/postgres-for-tests), in a
//! schema of its own.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use concertmaster_benches::{
    chain, drop_postgres_schema, fan_out_in, postgres_autovacuum, registry, vacuum_postgres_schema,
};
use concertmaster_core::{
    workflow::PublishedWorkflow, Engine, RunStatus, Store, TenantId, WorkflowDefinition,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

/// The schema the benchmark works in, dropped when it ends so that no
/// autovacuum of its leftovers runs beside the next measurement.
const SCHEMA: &str = "cm_bench";

async fn drop_schema() {
    if let Ok(url) = std::env::var("CONCERTMASTER_POSTGRES_URL") {
        drop_postgres_schema(&url, SCHEMA).await;
    }
}

async fn postgres_store() -> Option<Arc<dyn Store>> {
    let url = std::env::var("CONCERTMASTER_POSTGRES_URL").ok()?;
    concertmaster_benches::postgres_store(&url, SCHEMA)
        .await
        .ok()
}

/// Starts `parallel` runs of `workflow` and waits until all have succeeded.
async fn run_batch(
    engine: &Engine,
    tenant: &TenantId,
    workflow: &PublishedWorkflow,
    parallel: usize,
) {
    let mut runs = Vec::with_capacity(parallel);
    for _ in 0..parallel {
        runs.push(
            engine
                .start(workflow, json!({"n": 1}))
                .await
                .expect("starts"),
        );
    }
    for run in runs {
        let run = engine.settled(tenant, run).await.expect("settles");
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    }
}

fn durable_transitions(c: &mut Criterion) {
    let runtime = concertmaster_benches::runtime();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut stores: Vec<(&str, Arc<dyn Store>)> = Vec::new();
    runtime.block_on(async {
        let sqlite = concertmaster_store::SqliteStore::open(dir.path().join("bench.db"))
            .await
            .expect("sqlite opens");
        stores.push(("sqlite", Arc::new(sqlite)));
        match postgres_store().await {
            Some(store) => stores.push(("postgres", store)),
            None => eprintln!("postgres: set CONCERTMASTER_POSTGRES_URL to include it"),
        }
    });

    // Where the server's autovacuum is off (as on this project's test
    // machine), the bench does its upkeep between iterations, outside the
    // timings, as the peer comparison does: without it dead row versions
    // pile up and the Postgres chains measured 200 ms instead of 50.
    let upkeep = match std::env::var("CONCERTMASTER_POSTGRES_URL") {
        Ok(url) if runtime.block_on(postgres_autovacuum(&url)) == Some(false) => Some(url),
        _ => None,
    };
    let mut group = c.benchmark_group("durable");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    let tenant = TenantId::new("bench");
    for (backend, store) in &stores {
        let (engine, chain40, fan) = runtime.block_on(async {
            let engine = Engine::builder()
                .shared_store(Arc::clone(store))
                .registry(registry())
                .build()
                .await
                .expect("engine");
            let publish = |def: WorkflowDefinition| {
                let engine = engine.clone();
                let tenant = tenant.clone();
                async move { engine.publish(&tenant, def).await.expect("publishes") }
            };
            let chain40 = publish(chain(40)).await;
            let fan = publish(fan_out_in(1000)).await;
            (engine, chain40, fan)
        });
        for (shape, workflow, parallel, nodes) in [
            ("chain40_x16", &chain40, 16usize, 40u64 * 16),
            ("fan_out_1000", &fan, 1usize, 1002u64),
        ] {
            group.throughput(Throughput::Elements(nodes));
            group.bench_with_input(
                BenchmarkId::new(*backend, shape),
                workflow,
                |b, workflow| {
                    b.to_async(&runtime).iter_custom(|iters| {
                        let (engine, tenant, workflow) =
                            (engine.clone(), tenant.clone(), workflow.clone());
                        let upkeep = upkeep.clone().filter(|_| *backend == "postgres");
                        async move {
                            tokio::spawn(async move {
                                let mut timed = Duration::ZERO;
                                for _ in 0..iters {
                                    let began = Instant::now();
                                    run_batch(&engine, &tenant, &workflow, parallel).await;
                                    timed += began.elapsed();
                                    if let Some(url) = &upkeep {
                                        if let Err(why) = vacuum_postgres_schema(url, SCHEMA).await
                                        {
                                            eprintln!("postgres upkeep: {why}");
                                        }
                                    }
                                }
                                timed
                            })
                            .await
                            .expect("benchmark task")
                        }
                    });
                },
            );
        }
        engine.shutdown();
    }
    group.finish();
    runtime.block_on(drop_schema());
}

criterion_group!(benches, durable_transitions);
criterion_main!(benches);
