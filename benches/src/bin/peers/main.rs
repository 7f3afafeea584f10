//! The peer comparison: the same workloads on ConcertMaster (in memory, on
//! SQLite, on Postgres) and on the peers users would pick instead (Restate,
//! n8n, dagrs), alternating between systems round by round, written as one
//! markdown table of medians and ratios.
//!
//! `benches/peers/run` installs and starts the peers and calls this with
//! their addresses; a system that is not given is left out of the table.
//!
//! ```text
//! peers [--rounds N] [--quick] [--out FILE] [--postgres URL]
//!       [--restate URL] [--n8n URL] [--dagrs PATH] [--command TEXT]
//!       [--only NAME] [--wait-only]
//! ```
//!
//! `--only` keeps the systems whose name holds NAME and `--wait-only` the
//! wait workload, for measuring or profiling one change:
//!
//! ```text
//! ```

#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concertmaster_benches::{
    add_chain, add_fan_out_in, drop_postgres_schema, postgres_autovacuum, postgres_store, registry,
    vacuum_postgres_schema, KEEP_ENDED_RUNS,
};
use concertmaster_benches::{wait_then_add, wake_key};
use concertmaster_core::{
    run::Delivery, workflow::PublishedWorkflow, Engine, InMemoryStore, RunId, RunStatus, Store,
    TenantId,
};
use concertmaster_store::{Durability, SqliteStore};
use serde_json::{json, Value};

mod measure;
mod report;
mod subjects;
mod workload;

use measure::*;
use report::*;
use subjects::*;
use workload::*;

pub(crate) struct Options {
    pub(crate) rounds: usize,
    pub(crate) quick: bool,
    pub(crate) out: PathBuf,
    pub(crate) postgres: Option<String>,
    pub(crate) restate: Option<String>,
    pub(crate) n8n: Option<String>,
    pub(crate) dagrs: Option<PathBuf>,
    pub(crate) command: String,
    /// Only the systems whose name holds this text (for profiling one).
    pub(crate) only: Option<String>,
    /// Only the wait workload.
    pub(crate) wait_only: bool,
}

pub(crate) fn options() -> Result<Options, String> {
    let mut options = Options {
        rounds: 3,
        quick: false,
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md"),
        postgres: None,
        restate: None,
        n8n: None,
        dagrs: None,
        command: "benches/peers/run".into(),
        only: None,
        wait_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--quick" {
            options.quick = true;
            continue;
        }
        if flag == "--wait-only" {
            options.wait_only = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rounds" => {
                options.rounds = value
                    .parse()
                    .map_err(|_| format!("--rounds {value}: not a whole number"))?
            }
            "--out" => options.out = value.into(),
            "--postgres" => options.postgres = Some(value),
            "--restate" => options.restate = Some(value),
            "--n8n" => options.n8n = Some(value),
            "--dagrs" => options.dagrs = Some(value.into()),
            "--command" => options.command = value,
            "--only" => options.only = Some(value),
            other => return Err(format!("unknown option {other}")),
        }
    }
    options.rounds = options.rounds.max(1);
    Ok(options)
}

/// Shows one round's figure of one system while the comparison runs.
fn report(round: usize, measure: Measure, name: &str, samples: &Samples) {
    eprintln!(
        "round {} · {measure:?} · {name}: {} runs {}",
        round + 1,
        samples.runs,
        cell(measure, samples)
    );
}

/// After a measure of Postgres on a server without autovacuum: its
/// upkeep, outside the timings.
async fn upkeep(options: &Options, vacuum: bool, name: &str) {
    if let (true, Some(url)) = (vacuum && name == POSTGRES, &options.postgres) {
        if let Err(why) = vacuum_postgres_schema(url, PG_SCHEMA).await {
            eprintln!("{POSTGRES}: {why}");
        }
    }
}

/// Adds one round's `samples` to the table; a failure stays.
fn record(table: &mut Table, measure: Measure, name: &'static str, samples: Samples) {
    let entry = table.entry((measure, name)).or_default();
    entry.latencies.extend(samples.latencies);
    entry.rates.extend(samples.rates);
    entry.runs += samples.runs;
    entry.failure = entry.failure.take().or(samples.failure);
}

/// Every measure of every subject, and whether Postgres was vacuumed
/// between them.
async fn measure_all(options: &Options, subjects: &[Subject]) -> (Table, bool) {
    let mut table = Table::new();
    let mut broken: BTreeMap<&'static str, String> = BTreeMap::new();
    for subject in subjects {
        if let Err(why) = subject.warm_up(options.quick).await {
            eprintln!("{}: warm-up failed: {why}", subject.name);
            broken.insert(subject.name, why);
        }
    }
    // A server without autovacuum gets its upkeep from the harness, after
    // each measure and outside its timings.
    let vacuum = match &options.postgres {
        Some(url) => postgres_autovacuum(url).await == Some(false),
        None => false,
    };
    let measures: &[Measure] = if options.wait_only { &[] } else { &MEASURES };
    for round in 0..options.rounds {
        for &measure in measures {
            // Each round starts with a different system, so none always
            // runs on a machine just warmed (or just tired) by another.
            let count = subjects.len();
            for k in 0..count {
                let subject = &subjects[(k + round) % count];
                let entry = table.entry((measure, subject.name)).or_default();
                if let Some(why) = broken.get(subject.name).or(entry.failure.as_ref()) {
                    entry.failure = Some(why.clone());
                    continue;
                }
                let samples = subject.measure(measure, options.quick).await;
                report(round, measure, subject.name, &samples);
                record(&mut table, measure, subject.name, samples);
                upkeep(options, vacuum, subject.name).await;
            }
        }
        let count = subjects.len();
        for k in 0..count {
            let subject = &subjects[(k + round) % count];
            let Some(waiter) = subject.waiter() else {
                continue;
            };
            if broken.contains_key(subject.name)
                || table
                    .get(&(Measure::WaitResumes, subject.name))
                    .is_some_and(|s| s.failure.is_some())
            {
                continue;
            }
            let (runs, _, limit) = Measure::WaitStarts.budget(options.quick);
            let figures = measure_wait(&waiter, runs, limit).await;
            for (measure, samples) in [
                Measure::WaitStarts,
                Measure::WaitResumes,
                Measure::WaitLatency,
            ]
            .into_iter()
            .zip(figures)
            {
                report(round, measure, subject.name, &samples);
                record(&mut table, measure, subject.name, samples);
            }
            upkeep(options, vacuum, subject.name).await;
        }
    }
    for subject in subjects {
        if let System::Engine { engine, .. } = &subject.system {
            engine.shutdown();
        }
    }
    if let Some(url) = &options.postgres {
        drop_postgres_schema(url, PG_SCHEMA).await;
    }
    (table, vacuum)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(why) => {
            eprintln!("peers: {why}");
            std::process::exit(2);
        }
    };
    let Ok(dir) = tempfile::tempdir() else {
        eprintln!("peers: no temporary directory for the SQLite file");
        std::process::exit(1);
    };
    // Measured from a task on the runtime's workers, as a host's request
    // handler would call the engine, not from the thread blocked in main.
    let measured = tokio::spawn(async move {
        let subjects = subjects(&options, dir.path()).await;
        let (table, vacuumed) = measure_all(&options, &subjects).await;
        (options, subjects, table, vacuumed)
    })
    .await;
    let Ok((options, subjects, table, vacuumed)) = measured else {
        eprintln!("peers: the measuring task panicked");
        std::process::exit(1);
    };
    match write_results(&options, &subjects, &table, vacuumed) {
        Ok(()) => eprintln!("wrote {}", options.out.display()),
        Err(e) => {
            eprintln!("peers: {}: {e}", options.out.display());
            std::process::exit(1);
        }
    }
}
