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

type Outcome = Result<(), String>;
type RunFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;
/// Starts one run of a workload and resolves when it has ended and its
/// result was checked.
type Runner = Arc<dyn Fn() -> RunFuture + Send + Sync>;

/// The workflow shapes, the same on every system.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Shape {
    Three,
    Chain40,
    FanOut,
    /// A trigger, a step that waits for an event from outside, a step.
    Wait,
}

impl Shape {
    fn expected(self) -> i64 {
        match self {
            Shape::Three => 4,
            Shape::Chain40 => 41,
            Shape::FanOut => 2000,
            Shape::Wait => 3,
        }
    }

    fn nodes(self) -> usize {
        match self {
            Shape::Three => 4,
            Shape::Chain40 => 41,
            Shape::FanOut => 1002,
            Shape::Wait => 3,
        }
    }

    fn dagrs_name(self) -> &'static str {
        match self {
            Shape::Three => "three",
            Shape::Chain40 => "chain40",
            Shape::FanOut => "fanout1000",
            Shape::Wait => "wait",
        }
    }
}

/// What is measured, with its bounds: a fixed count of runs, how many are in
/// flight at once, and a time limit after which the loop stops early.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Measure {
    ThreeLatency,
    ThreeThroughput,
    Chain40,
    FanOut,
    /// Runs of the wait workload started until each waits, 16 callers.
    WaitStarts,
    /// Waiting runs resumed until each ended, 16 callers.
    WaitResumes,
    /// The time from a resume to its run's end.
    WaitLatency,
}

/// The peers' rounds: the wait workload is measured apart
/// ([`measure_wait`]), its three figures from one pass.
const MEASURES: [Measure; 4] = [
    Measure::ThreeLatency,
    Measure::ThreeThroughput,
    Measure::Chain40,
    Measure::FanOut,
];

impl Measure {
    fn shape(self) -> Shape {
        match self {
            Measure::ThreeLatency | Measure::ThreeThroughput => Shape::Three,
            Measure::Chain40 => Shape::Chain40,
            Measure::FanOut => Shape::FanOut,
            Measure::WaitStarts | Measure::WaitResumes | Measure::WaitLatency => Shape::Wait,
        }
    }

    /// (runs, in flight, time limit) of one round; for the wait workload
    /// the time limit is that of each of its two phases.
    fn budget(self, quick: bool) -> (usize, usize, Duration) {
        let (runs, in_flight, limit) = match self {
            Measure::ThreeLatency => (300, 1, 60),
            Measure::ThreeThroughput => (2000, 200, 120),
            Measure::Chain40 => (50, 1, 60),
            Measure::FanOut => (10, 1, 120),
            Measure::WaitStarts | Measure::WaitResumes | Measure::WaitLatency => {
                (WAITING_RUNS, WAIT_CALLERS, 90)
            }
        };
        let runs = if quick { (runs / 10).max(2) } else { runs };
        (runs, in_flight, Duration::from_secs(limit))
    }

    fn title(self) -> &'static str {
        match self {
            Measure::ThreeLatency => "3 steps, one run at a time: median latency (p95)",
            Measure::ThreeThroughput => "3 steps, 200 runs in flight: runs/s",
            Measure::Chain40 => "40-step chain: median time of one run",
            Measure::FanOut => "fan-out to 1,000 and join: median time of one run",
            Measure::WaitStarts => "starts: runs/s until each waits",
            Measure::WaitResumes => "resumes: runs/s until each ended",
            Measure::WaitLatency => "from a resume to the run's end: median (p95)",
        }
    }

    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Measure::ThreeThroughput | Measure::WaitStarts | Measure::WaitResumes
        )
    }
}

/// How many runs of the wait workload wait at once, in one round.
const WAITING_RUNS: usize = 10_000;

/// How many callers start, and then resume, the waiting runs.
const WAIT_CALLERS: usize = 16;

/// What a caller keeps of a waiting run to resume it.
enum Held {
    /// ConcertMaster: the run, whose wait key is [`wake_key`] of it.
    Run(RunId),
    /// Restate: the workflow's key and the awakeable its run waits on.
    Awakeable { key: String, id: String },
    /// n8n: the URL that resumes the execution's Wait node.
    ResumeUrl(String),
}

/// The second half of a call of the wait workload: resolves once its
/// effect is seen (a started run waits, a resumed run ended).
type Watch<T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send>>;

/// The first half: resolves once the system took the call (the run is
/// stored, the event delivered), with the watch of its effect.
type Call<T> = Pin<Box<dyn Future<Output = Result<Watch<T>, String>> + Send>>;

/// The two calls of the wait workload on one system: start a run, and
/// resume one (its result checked when it ends).
#[derive(Clone)]
struct Waiter {
    start: Arc<dyn Fn() -> Call<Held> + Send + Sync>,
    resume: Arc<dyn Fn(Held) -> Call<()> + Send + Sync>,
}

/// How a peer behind HTTP runs the wait workload.
#[derive(Clone)]
enum PeerWait {
    /// A Restate workflow whose run waits on an awakeable: its id is read
    /// through a shared handler, the awakeable resolved through the
    /// ingress, the result read by attaching to the workflow.
    Restate { base: String },
    /// An n8n workflow that answers its webhook with the execution's
    /// resume URL, then waits in a Wait node resumed through that URL,
    /// which answers once the execution ended.
    N8n { base: String },
}

/// What one round of one measure on one system gave.
#[derive(Default, Clone)]
struct Samples {
    latencies: Vec<Duration>,
    /// Runs per second of each round (throughput measures).
    rates: Vec<f64>,
    runs: usize,
    failure: Option<String>,
}

enum System {
    /// ConcertMaster inside this process: how hosts embed it.
    Engine {
        engine: Engine,
        tenant: TenantId,
        workflows: BTreeMap<Shape, PublishedWorkflow>,
    },
    /// A peer behind HTTP: POST a body, read the result from the answer.
    Http {
        client: reqwest::Client,
        urls: BTreeMap<Shape, (String, Value)>,
        wait: Option<PeerWait>,
    },
    /// dagrs, in its own process (its own Rust project): it times its runs
    /// itself and prints them.
    Dagrs { binary: PathBuf },
}

struct Subject {
    name: &'static str,
    durable: bool,
    system: System,
}

impl Subject {
    fn runner(&self, shape: Shape) -> Option<Runner> {
        match &self.system {
            System::Engine {
                engine,
                tenant,
                workflows,
            } => {
                let (engine, tenant) = (engine.clone(), tenant.clone());
                let workflow = workflows.get(&shape)?.clone();
                Some(Arc::new(move || {
                    let (engine, tenant, workflow) =
                        (engine.clone(), tenant.clone(), workflow.clone());
                    Box::pin(async move { run_engine(&engine, &tenant, &workflow).await })
                }))
            }
            System::Http { client, urls, .. } => {
                let client = client.clone();
                let (url, body) = urls.get(&shape)?.clone();
                Some(Arc::new(move || {
                    let (client, url, body) = (client.clone(), url.clone(), body.clone());
                    Box::pin(async move { run_http(&client, &url, &body, shape).await })
                }))
            }
            System::Dagrs { .. } => None,
        }
    }

    /// The wait workload, on durable systems only: the in-memory store
    /// keeps a bounded history, so a run can be gone before its end is seen.
    fn waiter(&self) -> Option<Waiter> {
        if !self.durable {
            return None;
        }
        match &self.system {
            System::Engine {
                engine,
                tenant,
                workflows,
            } => {
                let workflow = workflows.get(&Shape::Wait)?.clone();
                let (e, t) = (engine.clone(), tenant.clone());
                let start: Arc<dyn Fn() -> Call<Held> + Send + Sync> =
                    Arc::new(move || start_waiting(e.clone(), t.clone(), workflow.clone()));
                let (e, t) = (engine.clone(), tenant.clone());
                let resume: Arc<dyn Fn(Held) -> Call<()> + Send + Sync> =
                    Arc::new(move |held| resume_waiting(e.clone(), t.clone(), held));
                Some(Waiter { start, resume })
            }
            System::Http {
                client,
                wait: Some(wait),
                ..
            } => Some(http_waiter(client.clone(), wait.clone())),
            System::Http { wait: None, .. } | System::Dagrs { .. } => None,
        }
    }

    async fn measure(&self, measure: Measure, quick: bool) -> Samples {
        let (runs, in_flight, limit) = measure.budget(quick);
        if let System::Dagrs { binary } = &self.system {
            return run_dagrs(binary, measure.shape(), runs, in_flight, limit).await;
        }
        let Some(runner) = self.runner(measure.shape()) else {
            return failed("no such workload here");
        };
        if in_flight == 1 {
            sequential(runner, runs, limit).await
        } else {
            concurrent(runner, runs, in_flight, limit).await
        }
    }

    /// A few runs before the first measured round: connections opened,
    /// statements prepared, code paths warm.
    async fn warm_up(&self, quick: bool) -> Outcome {
        for shape in [Shape::Three, Shape::Chain40, Shape::FanOut] {
            if let Some(runner) = self.runner(shape) {
                let times = match (shape, quick) {
                    (Shape::FanOut, _) | (_, true) => 1,
                    _ => 20,
                };
                for _ in 0..times {
                    runner().await?;
                }
            }
        }
        Ok(())
    }
}

fn failed(why: impl Into<String>) -> Samples {
    Samples {
        failure: Some(why.into()),
        ..Samples::default()
    }
}

async fn run_engine(engine: &Engine, tenant: &TenantId, workflow: &PublishedWorkflow) -> Outcome {
    let id = engine
        .start(workflow, json!({"x": 1}))
        .await
        .map_err(|e| e.to_string())?;
    let run = engine
        .settled(tenant, id)
        .await
        .map_err(|e| e.to_string())?;
    if run.status == RunStatus::Succeeded {
        Ok(())
    } else {
        Err(format!("run {id} ended {:?}: {:?}", run.status, run.error))
    }
}

/// Starts a run of the wait workload; its watch sees it wait.
fn start_waiting(engine: Engine, tenant: TenantId, workflow: PublishedWorkflow) -> Call<Held> {
    Box::pin(async move {
        let id = engine
            .start(&workflow, json!({"x": 1}))
            .await
            .map_err(|e| e.to_string())?;
        let watch: Watch<Held> = Box::pin(async move {
            let run = engine
                .settled(&tenant, id)
                .await
                .map_err(|e| e.to_string())?;
            if run.status == RunStatus::Waiting {
                Ok(Held::Run(id))
            } else {
                Err(format!(
                    "run {id} settled {:?}: {:?}",
                    run.status, run.error
                ))
            }
        });
        Ok(watch)
    })
}

/// Resumes a waiting run; its watch sees it succeed.
fn resume_waiting(engine: Engine, tenant: TenantId, held: Held) -> Call<()> {
    Box::pin(async move {
        let Held::Run(id) = held else {
            return Err("not a ConcertMaster run".into());
        };
        match engine
            .resume(&tenant, &wake_key(id), json!({"x": 1}))
            .await
            .map_err(|e| e.to_string())?
        {
            Delivery::Resumed(_) => {}
            _ => return Err(format!("run {id} was not waiting: its wake-up is held")),
        }
        let watch: Watch<()> = Box::pin(async move {
            let run = engine
                .finished(&tenant, id)
                .await
                .map_err(|e| e.to_string())?;
            if run.status == RunStatus::Succeeded {
                Ok(())
            } else {
                Err(format!("run {id} ended {:?}: {:?}", run.status, run.error))
            }
        });
        Ok(watch)
    })
}

/// Keys of Restate workflows are used once: each start takes a new one.
static WORKFLOW_KEYS: AtomicUsize = AtomicUsize::new(0);

fn http_waiter(client: reqwest::Client, wait: PeerWait) -> Waiter {
    let (c, w) = (client.clone(), wait.clone());
    let start: Arc<dyn Fn() -> Call<Held> + Send + Sync> = Arc::new(move || {
        let (client, wait) = (c.clone(), w.clone());
        Box::pin(async move {
            let watch: Watch<Held> = match wait {
                PeerWait::Restate { base } => {
                    let key = format!(
                        "{}-{}",
                        std::process::id(),
                        WORKFLOW_KEYS.fetch_add(1, Ordering::Relaxed)
                    );
                    post_json(&client, &format!("{base}/waiter/{key}/run/send"), &json!(1)).await?;
                    Box::pin(async move {
                        // Answers once the run created its awakeable.
                        let url = format!("{base}/waiter/{key}/awakeable");
                        let id = post_json(&client, &url, &json!(null)).await?;
                        let id = id
                            .as_str()
                            .ok_or_else(|| format!("waiter {key}: no awakeable id in {id}"))?
                            .to_string();
                        Ok(Held::Awakeable { key, id })
                    })
                }
                PeerWait::N8n { base } => {
                    let answer = post_json(
                        &client,
                        &format!("{base}/webhook/cm-wait"),
                        &json!({"x": 1}),
                    )
                    .await?;
                    // n8n writes its public base into the URL; the path is
                    // what resumes.
                    let url = answer
                        .get("resumeUrl")
                        .and_then(Value::as_str)
                        .and_then(|url| url.find("/webhook-waiting/").map(|at| &url[at..]))
                        .ok_or_else(|| format!("n8n answered no resume URL: {answer}"))?;
                    let held = Held::ResumeUrl(format!("{base}{url}"));
                    Box::pin(async move { Ok(held) })
                }
            };
            Ok(watch)
        })
    });
    let resume: Arc<dyn Fn(Held) -> Call<()> + Send + Sync> = Arc::new(move |held| {
        let (client, wait) = (client.clone(), wait.clone());
        Box::pin(async move {
            let watch: Watch<()> = match (wait, held) {
                (PeerWait::Restate { base }, Held::Awakeable { key, id }) => {
                    let url = format!("{base}/restate/awakeables/{id}/resolve");
                    post_json(&client, &url, &json!(1)).await?;
                    Box::pin(async move {
                        let url = format!("{base}/restate/workflow/waiter/{key}/attach");
                        expect_wait_result(get_json(&client, &url).await?)
                    })
                }
                (PeerWait::N8n { .. }, Held::ResumeUrl(url)) => {
                    // The Wait node answers its resume once the execution
                    // ended: n8n's call is the whole of it. The answer to
                    // the start comes before the Wait node stored its
                    // wait: a resume that early is refused.
                    let mut tries = 0;
                    let answer = loop {
                        match post_json(&client, &url, &json!({"x": 1})).await {
                            Ok(answer) => break answer,
                            Err(why) if tries < 50 && why.contains(" 409 ") => {
                                tries += 1;
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            Err(why) => return Err(why),
                        }
                    };
                    let checked = expect_wait_result(answer);
                    Box::pin(async move { checked })
                }
                _ => return Err("a held run of another system".into()),
            };
            Ok(watch)
        })
    });
    Waiter { start, resume }
}

/// Checks a peer's result of the wait workload: 3, bare or as `x`.
fn expect_wait_result(result: Value) -> Outcome {
    let x = result
        .as_i64()
        .or_else(|| result.get("x").and_then(Value::as_i64));
    if x == Some(Shape::Wait.expected()) {
        Ok(())
    } else {
        Err(format!("expected {}, got {result}", Shape::Wait.expected()))
    }
}

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<Value, String> {
    read_json(url, client.post(url).json(body).send().await).await
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    read_json(url, client.get(url).send().await).await
}

async fn read_json(
    url: &str,
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, String> {
    let response = sent.map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("{url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("{url}: {} {text}", status.as_u16()));
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
}

async fn run_http(client: &reqwest::Client, url: &str, body: &Value, shape: Shape) -> Outcome {
    let response = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("POST {url}: {status}: {text}"));
    }
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("POST {url}: {e}: {text}"))?;
    // Restate answers the bare number; n8n an object with `x` (`sum_x`
    // from its Summarize node).
    let result = value.as_i64().or_else(|| {
        ["x", "sum_x"]
            .into_iter()
            .find_map(|key| value.get(key).and_then(Value::as_i64))
    });
    if result == Some(shape.expected()) {
        Ok(())
    } else {
        Err(format!(
            "POST {url}: expected {}, got {text}",
            shape.expected()
        ))
    }
}

/// Checks the result of one run on the engine: the last node's `x`.
async fn verify_engine(
    engine: &Engine,
    tenant: &TenantId,
    workflow: &PublishedWorkflow,
    shape: Shape,
) -> Outcome {
    let id = engine
        .start(workflow, json!({"x": 1}))
        .await
        .map_err(|e| e.to_string())?;
    engine
        .settled(tenant, id)
        .await
        .map_err(|e| e.to_string())?;
    let detail = engine.run(tenant, id).await.map_err(|e| e.to_string())?;
    let last = match shape {
        Shape::Three => "s2",
        Shape::Chain40 => "s39",
        Shape::FanOut => "join",
        Shape::Wait => "done",
    };
    let x = detail
        .output(last)
        .and_then(|ports| ports.main_items().first())
        .and_then(|item| item.get("x"))
        .and_then(Value::as_i64);
    if x == Some(shape.expected()) {
        Ok(())
    } else {
        Err(format!(
            "{shape:?}: expected x = {}, got {x:?}",
            shape.expected()
        ))
    }
}

/// Checks one run of the wait workload on the engine: it waits, and once
/// resumed its last node's `x` is 3.
/// Checks one run of the wait workload on the engine: it waits, and once
/// resumed its last node's `x` is 3.
async fn verify_wait(engine: &Engine, tenant: &TenantId, workflow: &PublishedWorkflow) -> Outcome {
    let started = start_waiting(engine.clone(), tenant.clone(), workflow.clone()).await?;
    let held = started.await?;
    let Held::Run(id) = held else {
        return Err("not a ConcertMaster run".into());
    };
    let resumed = resume_waiting(engine.clone(), tenant.clone(), Held::Run(id)).await?;
    resumed.await?;
    let detail = engine.run(tenant, id).await.map_err(|e| e.to_string())?;
    let x = detail
        .output("done")
        .and_then(|ports| ports.main_items().first())
        .and_then(|item| item.get("x"))
        .and_then(Value::as_i64);
    if x == Some(Shape::Wait.expected()) {
        Ok(())
    } else {
        Err(format!("Wait: expected x = 3, got {x:?}"))
    }
}

async fn sequential(runner: Runner, runs: usize, limit: Duration) -> Samples {
    let began = Instant::now();
    let mut samples = Samples::default();
    while samples.runs < runs && began.elapsed() < limit {
        let start = Instant::now();
        if let Err(why) = runner().await {
            samples.failure = Some(why);
            break;
        }
        samples.latencies.push(start.elapsed());
        samples.runs += 1;
    }
    samples
}

async fn concurrent(runner: Runner, runs: usize, in_flight: usize, limit: Duration) -> Samples {
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut lanes = Vec::with_capacity(in_flight);
    for _ in 0..in_flight {
        let (runner, next) = (Arc::clone(&runner), Arc::clone(&next));
        lanes.push(tokio::spawn(async move {
            let mut done = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < runs && began.elapsed() < limit {
                runner().await?;
                done += 1;
            }
            Ok::<usize, String>(done)
        }));
    }
    let mut samples = Samples::default();
    for lane in lanes {
        match lane.await {
            Ok(Ok(done)) => samples.runs += done,
            Ok(Err(why)) => samples.failure = Some(why),
            Err(panic) => samples.failure = Some(panic.to_string()),
        }
    }
    let elapsed = began.elapsed();
    if samples.failure.is_none() {
        samples
            .rates
            .push(samples.runs as f64 / elapsed.as_secs_f64());
    }
    samples
}

/// The three figures of the wait workload ([`Measure::WaitStarts`],
/// [`Measure::WaitResumes`], [`Measure::WaitLatency`]) from one pass.
/// `runs` are started by [`WAIT_CALLERS`] callers, as a host's request
/// handlers would: each call returns once the system took it, and a
/// watch of its own sees the run wait; the phase ends when all wait. Then
/// all are resumed the same way, each watch seeing its run end; a run's
/// latency is from its resume call to its end seen.
async fn measure_wait(waiter: &Waiter, runs: usize, limit: Duration) -> [Samples; 3] {
    let began = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut lanes = Vec::with_capacity(WAIT_CALLERS);
    for _ in 0..WAIT_CALLERS {
        let (start, next) = (Arc::clone(&waiter.start), Arc::clone(&next));
        lanes.push(tokio::spawn(async move {
            let mut watches = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < runs && began.elapsed() < limit {
                match start().await {
                    Ok(watch) => watches.push(tokio::spawn(watch)),
                    Err(why) => return (watches, Some(why)),
                }
            }
            (watches, None)
        }));
    }
    let mut starts = Samples::default();
    let waiting = gather(lanes, &mut starts.failure).await;
    starts.runs = waiting.len();
    starts
        .rates
        .push(waiting.len() as f64 / began.elapsed().as_secs_f64());

    // Every run that waits is resumed, whatever the first phase's end, so
    // none is left waiting into the next round.
    let began = Instant::now();
    let queue = Arc::new(std::sync::Mutex::new(waiting));
    let mut lanes = Vec::with_capacity(WAIT_CALLERS);
    for _ in 0..WAIT_CALLERS {
        let (resume, queue) = (Arc::clone(&waiter.resume), Arc::clone(&queue));
        lanes.push(tokio::spawn(async move {
            let mut watches = Vec::new();
            loop {
                let held = match queue.lock() {
                    Ok(mut queue) => queue.pop(),
                    Err(_) => None,
                };
                let Some(held) = held else { break };
                if began.elapsed() > limit * 2 {
                    return (watches, Some(format!("resumes took over {:?}", limit * 2)));
                }
                let at = Instant::now();
                match resume(held).await {
                    Ok(watch) => {
                        watches.push(tokio::spawn(
                            async move { watch.await.map(|()| at.elapsed()) },
                        ))
                    }
                    Err(why) => return (watches, Some(why)),
                }
            }
            (watches, None)
        }));
    }
    let mut resumes = Samples::default();
    let mut latency = Samples {
        latencies: gather(lanes, &mut resumes.failure).await,
        ..Samples::default()
    };
    resumes.runs = latency.latencies.len();
    latency.runs = resumes.runs;
    resumes
        .rates
        .push(resumes.runs as f64 / began.elapsed().as_secs_f64());
    latency.failure = resumes.failure.clone();
    if starts.failure.is_some() {
        starts.rates.clear();
    }
    if resumes.failure.is_some() {
        resumes.rates.clear();
    }
    [starts, resumes, latency]
}

/// A caller's watches, and why it stopped early if it did.
type Lane<T> = tokio::task::JoinHandle<(
    Vec<tokio::task::JoinHandle<Result<T, String>>>,
    Option<String>,
)>;

/// What the watches of every lane saw, once all ended; the first failure
/// of a caller or a watch goes to `failure`.
async fn gather<T>(lanes: Vec<Lane<T>>, failure: &mut Option<String>) -> Vec<T> {
    let mut watches = Vec::new();
    for lane in lanes {
        match lane.await {
            Ok((mine, stopped)) => {
                watches.extend(mine);
                *failure = failure.take().or(stopped);
            }
            Err(panic) => *failure = Some(panic.to_string()),
        }
    }
    let mut seen = Vec::with_capacity(watches.len());
    for watch in watches {
        match watch.await {
            Ok(Ok(value)) => seen.push(value),
            Ok(Err(why)) => *failure = failure.take().or(Some(why)),
            Err(panic) => *failure = Some(panic.to_string()),
        }
    }
    seen
}

async fn run_dagrs(
    binary: &Path,
    shape: Shape,
    runs: usize,
    in_flight: usize,
    limit: Duration,
) -> Samples {
    let child = tokio::process::Command::new(binary)
        .args([
            shape.dagrs_name().to_string(),
            runs.to_string(),
            in_flight.to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(limit, child).await {
        Err(_) => return failed(format!("did not finish within {limit:?}")),
        Ok(Err(e)) => return failed(format!("{}: {e}", binary.display())),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return failed(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    let parsed: Value = match serde_json::from_slice(&output.stdout) {
        Ok(value) => value,
        Err(e) => return failed(format!("dagrs-peer printed no JSON: {e}")),
    };
    let latencies: Vec<Duration> = parsed["latencies_ns"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(Value::as_u64)
                .map(Duration::from_nanos)
                .collect()
        })
        .unwrap_or_default();
    let elapsed = Duration::from_nanos(parsed["elapsed_ns"].as_u64().unwrap_or(0));
    let mut samples = Samples {
        runs: latencies.len(),
        ..Samples::default()
    };
    if in_flight > 1 {
        samples
            .rates
            .push(latencies.len() as f64 / elapsed.as_secs_f64().max(1e-9));
    } else {
        samples.latencies = latencies;
    }
    samples
}

struct Options {
    rounds: usize,
    quick: bool,
    out: PathBuf,
    postgres: Option<String>,
    restate: Option<String>,
    n8n: Option<String>,
    dagrs: Option<PathBuf>,
    command: String,
    /// Only the systems whose name holds this text (for profiling one).
    only: Option<String>,
    /// Only the wait workload.
    wait_only: bool,
}

fn options() -> Result<Options, String> {
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

async fn engine_subject(
    name: &'static str,
    durable: bool,
    store: Option<Arc<dyn Store>>,
) -> Result<Subject, String> {
    let mut builder = Engine::builder().registry(registry());
    builder = match store {
        Some(store) => builder.shared_store(store),
        // As a long-running host on the in-memory store keeps it.
        None => builder.store(InMemoryStore::new().keep_ended_runs(KEEP_ENDED_RUNS)),
    };
    let engine = builder.build().await.map_err(|e| e.to_string())?;
    let tenant = TenantId::new("peers");
    let mut workflows = BTreeMap::new();
    for (shape, definition) in [
        (Shape::Three, add_chain(3)),
        (Shape::Chain40, add_chain(40)),
        (Shape::FanOut, add_fan_out_in(1000)),
    ] {
        let workflow = engine
            .publish(&tenant, definition)
            .await
            .map_err(|e| e.to_string())?;
        verify_engine(&engine, &tenant, &workflow, shape).await?;
        workflows.insert(shape, workflow);
    }
    let workflow = engine
        .publish(&tenant, wait_then_add())
        .await
        .map_err(|e| e.to_string())?;
    verify_wait(&engine, &tenant, &workflow).await?;
    workflows.insert(Shape::Wait, workflow);
    Ok(Subject {
        name,
        durable,
        system: System::Engine {
            engine,
            tenant,
            workflows,
        },
    })
}

/// The name of ConcertMaster on Postgres in the table.
const POSTGRES: &str = "ConcertMaster, Postgres";

/// ConcertMaster on SQLite as it ships: `synchronous = FULL`.
const SQLITE_FULL: &str = "ConcertMaster, SQLite FULL";

/// ConcertMaster on SQLite with `synchronous = NORMAL`.
const SQLITE_NORMAL: &str = "ConcertMaster, SQLite NORMAL";

/// The schema the comparison works in on Postgres, dropped when it ends.
const PG_SCHEMA: &str = "cm_peers";

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        // The wait workload watches thousands of runs at once.
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client without TLS settings builds")
}

/// A durable peer behind HTTP: `urls` start the 3-step, 40-step and
/// fan-out workloads, each POSTed `body`.
fn http_subject(
    name: &'static str,
    urls: [String; 3],
    body: Value,
    wait: Option<PeerWait>,
) -> Subject {
    let urls = [Shape::Three, Shape::Chain40, Shape::FanOut]
        .into_iter()
        .zip(urls)
        .map(|(shape, url)| (shape, (url, body.clone())))
        .collect();
    Subject {
        name,
        durable: true,
        system: System::Http {
            client: http_client(),
            urls,
            wait,
        },
    }
}

async fn subjects(options: &Options, sqlite_dir: &Path) -> Vec<Subject> {
    let mut subjects = Vec::new();
    let only = options.only.clone();
    let mut add = |result: Result<Subject, String>, name: &str| match result {
        Ok(subject)
            if only
                .as_ref()
                .is_none_or(|only| subject.name.contains(only.as_str())) =>
        {
            subjects.push(subject)
        }
        Ok(_) => {}
        Err(why) => eprintln!("{name}: left out: {why}"),
    };
    add(
        engine_subject("ConcertMaster, in memory", false, None).await,
        "in memory",
    );
    if let Some(binary) = &options.dagrs {
        add(
            Ok(Subject {
                name: "dagrs",
                durable: false,
                system: System::Dagrs {
                    binary: binary.clone(),
                },
            }),
            "dagrs",
        );
    }
    for (name, durability, file) in [
        (SQLITE_FULL, Durability::Full, "full.db"),
        (SQLITE_NORMAL, Durability::Normal, "normal.db"),
    ] {
        let sqlite = match SqliteStore::open_with(sqlite_dir.join(file), durability).await {
            Ok(store) => engine_subject(name, true, Some(Arc::new(store) as Arc<dyn Store>)).await,
            Err(e) => Err(e.to_string()),
        };
        add(sqlite, name);
    }
    if let Some(url) = &options.postgres {
        let postgres = match postgres_store(url, PG_SCHEMA).await {
            Ok(store) => engine_subject(POSTGRES, true, Some(store)).await,
            Err(why) => Err(why),
        };
        add(postgres, "Postgres");
    }
    if let Some(base) = &options.restate {
        let base = base.trim_end_matches('/');
        let url = |handler: &str| format!("{base}/bench/{handler}");
        let urls = [url("three"), url("chain40"), url("fanout1000")];
        let wait = PeerWait::Restate {
            base: base.to_string(),
        };
        add(
            Ok(http_subject("Restate", urls, json!(1), Some(wait))),
            "Restate",
        );
    }
    if let Some(base) = &options.n8n {
        let base = base.trim_end_matches('/');
        let url = |path: &str| format!("{base}/webhook/{path}");
        let urls = [url("cm-three"), url("cm-chain40"), url("cm-fanout1000")];
        let wait = PeerWait::N8n {
            base: base.to_string(),
        };
        add(
            Ok(http_subject("n8n", urls, json!({"x": 1}), Some(wait))),
            "n8n",
        );
    }
    subjects
}

fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let index = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(index).copied()
}

fn median_f64(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

/// The figure compared across systems: seconds (lower is better) or runs/s.
fn headline(measure: Measure, samples: &Samples) -> Option<f64> {
    if samples.failure.is_some() {
        return None;
    }
    if measure.higher_is_better() {
        median_f64(&samples.rates)
    } else {
        let mut sorted = samples.latencies.clone();
        sorted.sort();
        quantile(&sorted, 0.5).map(|d| d.as_secs_f64())
    }
}

fn duration_text(seconds: f64) -> String {
    if seconds < 1e-3 {
        format!("{:.1} µs", seconds * 1e6)
    } else if seconds < 1.0 {
        format!("{:.2} ms", seconds * 1e3)
    } else {
        format!("{seconds:.2} s")
    }
}

fn cell(measure: Measure, samples: &Samples) -> String {
    if let Some(why) = &samples.failure {
        let short: String = why.chars().take(80).collect();
        return format!("failed: {}", short.replace('|', "/"));
    }
    match headline(measure, samples) {
        None => "–".into(),
        Some(rate) if measure.higher_is_better() => format!("{rate:.0} runs/s"),
        Some(seconds) if matches!(measure, Measure::ThreeLatency | Measure::WaitLatency) => {
            let mut sorted = samples.latencies.clone();
            sorted.sort();
            let p95 = quantile(&sorted, 0.95).map_or(0.0, |d| d.as_secs_f64());
            format!("{} ({})", duration_text(seconds), duration_text(p95))
        }
        Some(seconds) => duration_text(seconds),
    }
}

/// ConcertMaster / peer, read so that above 1 means ConcertMaster is ahead:
/// runs/s divided, times inverted.
fn ratio(measure: Measure, ours: &Samples, theirs: &Samples) -> String {
    match (headline(measure, ours), headline(measure, theirs)) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => {
            let ahead = if measure.higher_is_better() {
                a / b
            } else {
                b / a
            };
            format!("{ahead:.1}×")
        }
        _ => "–".into(),
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .map_or("unknown".into(), |kb| format!("{} GiB", kb / 1024 / 1024));
    let os = std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|l| l.trim_matches('"').to_string())
        .unwrap_or_else(|| "unknown OS".into());
    format!(
        "{model}, {cores} cores, {memory}; {os}, Linux {}; {}; node {}",
        command_line("uname", &["-r"]),
        command_line("rustc", &["--version"]),
        command_line("node", &["--version"]),
    )
}

type Table = BTreeMap<(Measure, &'static str), Samples>;

fn write_results(
    options: &Options,
    subjects: &[Subject],
    table: &Table,
    vacuumed: bool,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let date = command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let _ = writeln!(out, "# ConcertMaster beside its peers\n");
    let _ = writeln!(
        out,
        "Measured {date} with `{}` ({} rounds{}; systems alternate within each round).\n",
        options.command,
        options.rounds,
        if options.quick { ", quick" } else { "" }
    );
    let _ = writeln!(out, "Machine: {}.\n", machine());
    let _ = writeln!(
        out,
        "Every system runs the same three shapes, each step adding one to a number \
         (the peers' result checked on every run; ConcertMaster's result checked \
         before measuring, then every run checked to succeed, since reading a \
         run's outputs is a store read the peers do not pay): a trigger then 3 \
         steps; a trigger then \
         40 steps; a trigger fanning out to 1,000 steps joined by one. ConcertMaster \
         runs inside the benchmark process, as hosts embed it; Restate and n8n are \
         servers on 127.0.0.1 reached over HTTP by the same client; dagrs runs in a \
         process of its own. Ratios are ConcertMaster against the peer, above 1× \
         where ConcertMaster is ahead (runs/s divided, times inverted).\n"
    );
    let _ = writeln!(
        out,
        "Durability as each system ships it: ConcertMaster on SQLite commits every \
         step to one file in WAL mode (a step without side effects, as all of these \
         are, with the run's next write or its settling), as it ships with `synchronous = \
         FULL` (every commit synced: safe across a power loss) and, beside it, with \
         `synchronous = NORMAL` (safe across a process crash; a power loss may drop \
         the last commits); every write of a run's driver is fenced by its lease's \
         epoch; on Postgres with the server's `fsync` and `synchronous_commit` on; Restate \
         journals every step in its own log and RocksDB (its defaults); n8n stores \
         each execution in SQLite (its defaults). dagrs and ConcertMaster in memory \
         persist nothing; ConcertMaster's in-memory store keeps the runs in flight \
         and the {KEEP_ENDED_RUNS} that ended last, with their node records \
         (`InMemoryStore::keep_ended_runs`), as a long-running host would.\n"
    );
    if vacuumed {
        let _ = writeln!(
            out,
            "This machine's PostgreSQL runs with autovacuum off, so the harness does its \
             upkeep: `VACUUM (ANALYZE)` of the benchmark's schema after every Postgres \
             measure, outside the timings (without it the 3-step latency tripled over \
             three rounds as dead rows piled up).\n"
        );
    }
    for (title, durable) in [
        ("In memory (nothing persisted)", false),
        ("Durable (every step committed)", true),
    ] {
        let ours: Vec<&Subject> = subjects
            .iter()
            .filter(|s| s.durable == durable && s.name.starts_with("ConcertMaster"))
            .collect();
        let peers: Vec<&Subject> = subjects
            .iter()
            .filter(|s| s.durable == durable && !s.name.starts_with("ConcertMaster"))
            .collect();
        if ours.is_empty() {
            continue;
        }
        let _ = writeln!(out, "## {title}\n");
        let header = table_header(&mut out, &ours, &peers);
        for measure in MEASURES {
            let get = |s: &Subject| table.get(&(measure, s.name)).cloned().unwrap_or_default();
            let mut row = vec![measure.title().to_string()];
            row.extend(ours.iter().chain(&peers).map(|s| cell(measure, &get(s))));
            for o in &ours {
                for p in &peers {
                    row.push(ratio(measure, &get(o), &get(p)));
                }
            }
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let mut row = vec!["time per node, 40-step chain / fan-out (run time ÷ nodes)".to_string()];
        for s in ours.iter().chain(&peers) {
            let per = |measure: Measure| {
                table
                    .get(&(measure, s.name))
                    .and_then(|samples| headline(measure, samples))
                    .map_or("–".to_string(), |secs| {
                        duration_text(secs / measure.shape().nodes() as f64)
                    })
            };
            row.push(format!(
                "{} / {}",
                per(Measure::Chain40),
                per(Measure::FanOut)
            ));
        }
        row.resize(header.len(), String::new());
        let _ = writeln!(out, "| {} |\n", row.join(" | "));
    }
    write_wait_section(&mut out, subjects, table, options.rounds);
    let _ = writeln!(out, "## Targets\n");
    let _ = writeln!(out, "{}", targets(table));
    let runs: usize = table.values().map(|s| s.runs).sum();
    let _ = writeln!(out, "{runs} runs measured in all.\n");
    let _ = writeln!(
        out,
        "Where the time goes, what was changed for these figures and what is \
         left: [README.md](README.md#where-the-time-goes)."
    );
    std::fs::write(&options.out, out)
}

/// Writes a table's header: the workload, each system, then each of ours
/// against each peer; returns its cells.
fn table_header(out: &mut String, ours: &[&Subject], peers: &[&Subject]) -> Vec<String> {
    use std::fmt::Write as _;
    let mut header = vec!["workload".to_string()];
    header.extend(ours.iter().chain(peers).map(|s| s.name.to_string()));
    for o in ours {
        for p in peers {
            header.push(format!("{} / {}", short_name(o.name), p.name));
        }
    }
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    header
}

/// The wait workload's table: durable systems that ran it.
fn write_wait_section(out: &mut String, subjects: &[Subject], table: &Table, rounds: usize) {
    use std::fmt::Write as _;
    let ran = |s: &&Subject| s.durable && table.contains_key(&(Measure::WaitStarts, s.name));
    let ours: Vec<&Subject> = subjects
        .iter()
        .filter(ran)
        .filter(|s| s.name.starts_with("ConcertMaster"))
        .collect();
    let peers: Vec<&Subject> = subjects
        .iter()
        .filter(ran)
        .filter(|s| !s.name.starts_with("ConcertMaster"))
        .collect();
    if ours.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Waiting for a person\n");
    let _ = writeln!(
        out,
        "Each run starts, waits for an event from outside, is resumed with it and \
         ends with one more step (x = 1 + 1 + 1, checked on every run). Up to \
         {WAITING_RUNS} runs are started by {WAIT_CALLERS} concurrent callers, as a \
         host's request handlers would: a call returns once the system took it (the \
         run stored), and a watch of its own sees the run wait; starts/s counts until \
         all wait. Then all are resumed by {WAIT_CALLERS} callers the same way (a \
         call returns once the event is delivered), each watch seeing its run end; \
         resumes/s counts until all ended, and a run's latency runs from its resume \
         call to its end seen. Each phase stops making new calls after {} s (a \
         system slower than that waits with fewer runs). ConcertMaster: \
         `Engine::start`, watched by `settled`; `Engine::resume`, watched by \
         `finished`. Restate: a workflow whose run creates an awakeable and hands its \
         id to a shared handler through a durable promise; a start is `/run/send`, \
         watched by that handler; a resume resolves the awakeable through the \
         ingress (`/restate/awakeables/ID/resolve`), watched by attaching to the \
         workflow for its result. n8n: a webhook answered with the execution's \
         resume URL (by a Respond to Webhook node, just before the Wait node stores \
         its wait), and a Wait node resumed through that URL, whose answer comes \
         once the execution ended (n8n has no call that returns sooner), then a Set \
         node.\n",
        Measure::WaitStarts.budget(false).2.as_secs()
    );
    let header = table_header(out, &ours, &peers);
    let get =
        |measure: Measure, s: &Subject| table.get(&(measure, s.name)).cloned().unwrap_or_default();
    let mut row = vec!["runs waiting at once, per round".to_string()];
    row.extend(ours.iter().chain(&peers).map(|s| {
        let starts = get(Measure::WaitStarts, s);
        format!("{}", starts.runs / rounds.max(1))
    }));
    row.resize(header.len(), String::new());
    let _ = writeln!(out, "| {} |", row.join(" | "));
    for measure in [
        Measure::WaitStarts,
        Measure::WaitResumes,
        Measure::WaitLatency,
    ] {
        let mut row = vec![measure.title().to_string()];
        row.extend(
            ours.iter()
                .chain(&peers)
                .map(|s| cell(measure, &get(measure, s))),
        );
        for o in &ours {
            for p in &peers {
                row.push(ratio(measure, &get(measure, o), &get(measure, p)));
            }
        }
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    let _ = writeln!(out);
}

fn short_name(name: &str) -> &str {
    name.strip_prefix("ConcertMaster, ").unwrap_or(name)
}

fn targets(table: &Table) -> String {
    let figure = |measure: Measure, name: &str| {
        table
            .get(&(measure, name))
            .and_then(|samples| headline(measure, samples))
    };
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "not measured",
    };
    let mut lines = Vec::new();
    let per_node = [Measure::Chain40, Measure::FanOut]
        .into_iter()
        .filter_map(|m| figure(m, "ConcertMaster, in memory").map(|s| s / m.shape().nodes() as f64))
        .fold(None::<f64>, |worst, v| Some(worst.map_or(v, |w| w.max(v))));
    lines.push(format!(
        "- In memory, under 2 µs per node: {} ({}).",
        verdict(per_node.map(|s| s < 2e-6)),
        per_node.map_or("–".into(), |s| format!(
            "worst shape {}",
            duration_text(s)
        ))
    ));
    let sqlite_latency = figure(Measure::ThreeLatency, SQLITE_FULL);
    lines.push(format!(
        "- SQLite FULL, 3 steps under 1 ms median: {} ({}).",
        verdict(sqlite_latency.map(|s| s < 1e-3)),
        sqlite_latency.map_or("–".into(), duration_text)
    ));
    let restate = figure(Measure::ThreeThroughput, "Restate");
    for (name, times) in [(SQLITE_FULL, 10.0), (POSTGRES, 3.0)] {
        let ours = figure(Measure::ThreeThroughput, name);
        let ratio = ours.zip(restate).map(|(a, b)| a / b);
        lines.push(format!(
            "- {}, at least {times}× Restate's throughput: {} ({}).",
            short_name(name),
            verdict(ratio.map(|r| r >= times)),
            ratio.map_or("–".into(), |r| format!("{r:.1}×"))
        ));
    }
    let restate = figure(Measure::WaitResumes, "Restate");
    for name in [SQLITE_FULL, POSTGRES] {
        let resumes = figure(Measure::WaitResumes, name);
        let starts = figure(Measure::WaitStarts, name);
        lines.push(format!(
            "- {}, waiting runs resumed at least as fast as started: {} ({} resumes/s, {} starts/s).",
            short_name(name),
            verdict(resumes.zip(starts).map(|(r, s)| r >= s)),
            resumes.map_or("–".into(), |r| format!("{r:.0}")),
            starts.map_or("–".into(), |s| format!("{s:.0}"))
        ));
        let ratio = resumes.zip(restate).map(|(a, b)| a / b);
        lines.push(format!(
            "- {}, at least 10× Restate's resumes: {} ({}).",
            short_name(name),
            verdict(ratio.map(|r| r >= 10.0)),
            ratio.map_or("–".into(), |r| format!("{r:.1}×"))
        ));
    }
    lines.join("\n") + "\n"
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
