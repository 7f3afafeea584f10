//! The systems measured: ConcertMaster on each store, and the peers over
//! HTTP or as a command.

use super::*;

pub(crate) enum System {
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

pub(crate) struct Subject {
    pub(crate) name: &'static str,
    pub(crate) durable: bool,
    pub(crate) system: System,
}

impl Subject {
    pub(crate) fn runner(&self, shape: Shape) -> Option<Runner> {
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
    pub(crate) fn waiter(&self) -> Option<Waiter> {
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

    pub(crate) async fn measure(&self, measure: Measure, quick: bool) -> Samples {
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
    pub(crate) async fn warm_up(&self, quick: bool) -> Outcome {
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

pub(crate) async fn run_engine(
    engine: &Engine,
    tenant: &TenantId,
    workflow: &PublishedWorkflow,
) -> Outcome {
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
pub(crate) fn start_waiting(
    engine: Engine,
    tenant: TenantId,
    workflow: PublishedWorkflow,
) -> Call<Held> {
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
pub(crate) fn resume_waiting(engine: Engine, tenant: TenantId, held: Held) -> Call<()> {
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
pub(crate) static WORKFLOW_KEYS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn http_waiter(client: reqwest::Client, wait: PeerWait) -> Waiter {
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
pub(crate) fn expect_wait_result(result: Value) -> Outcome {
    let x = result
        .as_i64()
        .or_else(|| result.get("x").and_then(Value::as_i64));
    if x == Some(Shape::Wait.expected()) {
        Ok(())
    } else {
        Err(format!("expected {}, got {result}", Shape::Wait.expected()))
    }
}

pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<Value, String> {
    read_json(url, client.post(url).json(body).send().await).await
}

pub(crate) async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    read_json(url, client.get(url).send().await).await
}

pub(crate) async fn read_json(
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

pub(crate) async fn run_http(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    shape: Shape,
) -> Outcome {
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
pub(crate) async fn verify_engine(
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
pub(crate) async fn verify_wait(
    engine: &Engine,
    tenant: &TenantId,
    workflow: &PublishedWorkflow,
) -> Outcome {
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

pub(crate) async fn run_dagrs(
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

pub(crate) async fn engine_subject(
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
pub(crate) const POSTGRES: &str = "ConcertMaster, Postgres";

/// ConcertMaster on SQLite as it ships: `synchronous = FULL`.
pub(crate) const SQLITE_FULL: &str = "ConcertMaster, SQLite FULL";

/// ConcertMaster on SQLite with `synchronous = NORMAL`.
pub(crate) const SQLITE_NORMAL: &str = "ConcertMaster, SQLite NORMAL";

/// The schema the comparison works in on Postgres, dropped when it ends.
pub(crate) const PG_SCHEMA: &str = "cm_peers";

pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        // The wait workload watches thousands of runs at once.
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client without TLS settings builds")
}

/// A durable peer behind HTTP: `urls` start the 3-step, 40-step and
/// fan-out workloads, each POSTed `body`.
pub(crate) fn http_subject(
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

pub(crate) async fn subjects(options: &Options, sqlite_dir: &Path) -> Vec<Subject> {
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
