//! ConcertMaster alone, in memory: the peer comparison's 3-step run,
//! 40-step chain or 1,000-wide fan-out, run one at a time, and the median
//! time per node; or (`busy`) the 3-step run with 200 in flight, in runs
//! per second. A short, quiet process to measure a change with, or to run under
//! `valgrind --tool=callgrind` / `--tool=dhat` or `perf record`: it exits
//! without tearing the engine down, so the profile holds the runs only.
//!
//! ```text
//! in_memory [three|busy|chain|fan] [RUNS]
//! ```

#![allow(missing_docs)]

use std::time::{Duration, Instant};

use concertmaster_benches::KEEP_ENDED_RUNS;
use concertmaster_benches::{add_chain, add_fan_out_in, registry};
use concertmaster_core::{workflow::PublishedWorkflow, Engine, InMemoryStore, RunStatus, TenantId};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let shape = args.next().unwrap_or_else(|| "chain".into());
    let (definition, nodes, default_runs) = match shape.as_str() {
        "three" | "busy" => (add_chain(3), 4, 20000),
        "chain" => (add_chain(40), 41, 3000),
        "fan" => (add_fan_out_in(1000), 1002, 100),
        other => {
            eprintln!("in_memory: unknown shape {other}; use three, busy, chain or fan");
            std::process::exit(2);
        }
    };
    let runs = match args.next().map(|n| n.parse::<usize>()) {
        None => default_runs,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("in_memory: RUNS must be a whole number above 0");
            std::process::exit(2);
        }
    };
    // As a long-running host keeps it, and as the peer comparison does: the
    // runs in flight and the 1,000 that ended last.
    let engine = Engine::builder()
        .store(InMemoryStore::new().keep_ended_runs(KEEP_ENDED_RUNS))
        .registry(registry())
        .build()
        .await
        .expect("an in-memory engine builds");
    let tenant = TenantId::new("in-memory");
    let workflow = engine
        .publish(&tenant, definition)
        .await
        .expect("the benchmark workflow publishes");
    if shape == "busy" {
        busy(engine, tenant, workflow, runs).await;
    }
    // Timed from a task on the runtime's workers, as a host's request
    // handler would run it.
    let timed = tokio::spawn(async move {
        let mut took = Vec::with_capacity(runs);
        for i in 0..runs + 20 {
            let began = Instant::now();
            one_run(&engine, &tenant, &workflow).await;
            // The first twenty warm the caches up.
            if i >= 20 {
                took.push(began.elapsed());
            }
        }
        took.sort();
        // The engine goes back with the figure: dropped here, at the end of
        // this task, its store's records would be freed inside a profile.
        (took[took.len() / 2], engine)
    });
    let (median, _engine): (Duration, Engine) = timed.await.expect("the timed task ends");
    println!(
        "{shape}: {runs} runs, median {:.1} µs a run, {:.2} µs per node",
        median.as_secs_f64() * 1e6,
        median.as_secs_f64() * 1e6 / nodes as f64
    );
    // Not torn down: see above.
    std::process::exit(0);
}

/// The 3-step run with `LANES` runs in flight: each lane starts a run and
/// waits for it to settle, again and again; prints runs per second.
async fn busy(engine: Engine, tenant: TenantId, workflow: PublishedWorkflow, runs: usize) -> ! {
    const LANES: usize = 200;
    let began = Instant::now();
    let lanes: Vec<_> = (0..LANES)
        .map(|lane| {
            let (engine, tenant, workflow) = (engine.clone(), tenant.clone(), workflow.clone());
            let share = runs / LANES + usize::from(lane < runs % LANES);
            tokio::spawn(async move {
                for _ in 0..share {
                    one_run(&engine, &tenant, &workflow).await;
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await.expect("a lane ends");
    }
    let took = began.elapsed();
    println!(
        "busy: {runs} runs, {LANES} in flight, {:.0} runs/s",
        runs as f64 / took.as_secs_f64()
    );
    // Not torn down: see above.
    std::process::exit(0);
}

/// Starts a run of `workflow` and waits for it to succeed.
async fn one_run(engine: &Engine, tenant: &TenantId, workflow: &PublishedWorkflow) {
    let id = engine
        .start(workflow, json!({"x": 1}))
        .await
        .expect("a run starts");
    let run = engine.settled(tenant, id).await.expect("a run settles");
    assert_eq!(
        run.status,
        RunStatus::Succeeded,
        "run {id}: {:?}",
        run.error
    );
}
