//! Run with: cargo bench -p concertmaster-benches --bench node_overhead
//!
//! What one node costs the engine on the in-memory store: runs of no-op
//! nodes shaped as a 40-node chain, a 1,000-node chain and a 1,000-wide
//! fan-out/fan-in. Divide a run's time by its node count for the per-node
//! overhead (scheduling, two committed transitions, timeout and metrics).

#![allow(missing_docs)]

use std::time::Duration;

use concertmaster_benches::{chain, fan_out_in, registry, time_runs};
use concertmaster_core::{Engine, TenantId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde_json::json;

fn node_overhead(c: &mut Criterion) {
    let runtime = concertmaster_benches::runtime();
    let tenant = TenantId::new("bench");
    let (engine, shapes) = runtime.block_on(async {
        let engine = Engine::builder()
            .registry(registry())
            .build()
            .await
            .expect("engine");
        let mut shapes = Vec::new();
        for (name, nodes, def) in [
            ("chain", 40, chain(40)),
            ("chain", 1000, chain(1000)),
            ("fan_out_fan_in", 1002, fan_out_in(1000)),
        ] {
            let workflow = engine.publish(&tenant, def).await.expect("publishes");
            shapes.push((name, nodes, workflow));
        }
        (engine, shapes)
    });

    let mut group = c.benchmark_group("in_memory");
    group.measurement_time(Duration::from_secs(8));
    for (name, nodes, workflow) in &shapes {
        group.throughput(Throughput::Elements(*nodes as u64));
        group.bench_with_input(BenchmarkId::new(*name, nodes), workflow, |b, workflow| {
            // The loop runs on a runtime worker, as a host service's request
            // handler would, not on the thread that blocks on the runtime.
            b.to_async(&runtime).iter_custom(|iters| {
                time_runs(
                    engine.clone(),
                    tenant.clone(),
                    workflow.clone(),
                    json!({"n": 1}),
                    iters,
                )
            });
        });
    }
    group.finish();
}

criterion_group!(benches, node_overhead);
criterion_main!(benches);
