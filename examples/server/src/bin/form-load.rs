//! Load test of the form portal over loopback: issues N form links, then
//! submits each once through `POST /f/{token}` from C concurrent clients,
//! and reports requests per second and latency percentiles, then counts
//! the responses in the store: every accepted submission must be there,
//! once.
//!
//! ```text
//! cargo run --release -p concertmaster-server-example --bin form-load -- --submissions 5000 --concurrency 32
//! cargo run --release -p concertmaster-server-example --bin form-load -- --postgres postgres://root@127.0.0.1/test
//! ```
//! Bounded: a fixed number of requests and a time limit (`--seconds`, 300).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use concertmaster_core::{form::ResponseFilter, TenantId};
use concertmaster_server_example::{Config, PortalLimits, Server};

struct Options {
    submissions: usize,
    concurrency: usize,
    seconds: u64,
    postgres: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        submissions: 2000,
        concurrency: 32,
        seconds: 300,
        postgres: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--submissions" => {
                options.submissions = value()?
                    .parse()
                    .map_err(|e| format!("--submissions: {e}"))?
            }
            "--concurrency" => {
                options.concurrency = value()?
                    .parse()
                    .map_err(|e| format!("--concurrency: {e}"))?
            }
            "--seconds" => {
                options.seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?
            }
            "--postgres" => options.postgres = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = options()?;
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = match &options.postgres {
        Some(url) => Config::postgres(url.clone()),
        None => Config::sqlite(dir.path().join("load.db")),
    };
    config.portal_url = format!("{base}/f/");
    // Every client is this process on 127.0.0.1: the portal's per-address
    // limit would measure itself, not the portal.
    config.portal_limits = PortalLimits {
        per_client: None,
        per_link: None,
    };
    let server = Server::build(&config).await?;
    // A tenant of this run alone, so a shared database counts only its rows.
    let tenant = TenantId::new(format!("load-{}", std::process::id()));
    server.seed_demo(&tenant).await?;

    let mut tokens = Vec::with_capacity(options.submissions);
    for i in 0..options.submissions {
        let (_, url) = server
            .forms()
            .issue_link(
                &tenant,
                &"supplier-profile".into(),
                Some(format!("supplier-{i}@load.example")),
            )
            .await?;
        tokens.push(url.rsplit('/').next().unwrap_or_default().to_string());
    }
    let forms = server.forms().clone();
    let router = server.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let tokens = Arc::new(tokens);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..options.concurrency {
        let (client, tokens, next, base) =
            (client.clone(), tokens.clone(), next.clone(), base.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let (mut accepted, mut refused) = (0usize, 0usize);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tokens.len() || Instant::now() > deadline {
                    break;
                }
                let employees = (i % 500 + 1).to_string();
                let email = format!("supplier-{i}@load.example");
                let form = [
                    ("/company", "Load Test Supplier GmbH"),
                    ("/vatId", "DE123456789"),
                    ("/employees", employees.as_str()),
                    ("/contact/email", email.as_str()),
                ];
                let sent = Instant::now();
                let ok = match client
                    .post(format!("{base}/f/{}", tokens[i]))
                    .form(&form)
                    .send()
                    .await
                {
                    Ok(response) => response.status().is_success(),
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                if ok {
                    accepted += 1
                } else {
                    refused += 1
                }
            }
            (latencies, accepted, refused)
        }));
    }
    let mut latencies = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for worker in workers {
        let (l, a, r) = worker.await?;
        latencies.extend(l);
        accepted += a;
        refused += r;
    }
    let elapsed = started.elapsed();
    latencies.sort();

    // Counted page by page (newest first, a page at most 1000), by id.
    let mut seen = std::collections::HashSet::new();
    let mut filter = ResponseFilter::all();
    filter.limit = Some(1000);
    loop {
        let page = forms.responses(&tenant, &filter, "load-test").await?;
        let before = seen.len();
        let oldest = page.iter().map(|r| r.submitted_at).min();
        seen.extend(page.into_iter().map(|r| r.id));
        match oldest {
            // One microsecond past the oldest, so rows sharing its time are read again, not skipped.
            Some(oldest) if seen.len() > before => {
                filter.submitted_before = Some(oldest + chrono::Duration::microseconds(1));
            }
            _ => break,
        }
    }
    let stored = seen.len();
    let sent = accepted + refused;
    println!(
        "form submissions over loopback ({}, {} concurrent)",
        if options.postgres.is_some() {
            "Postgres"
        } else {
            "SQLite"
        },
        options.concurrency
    );
    println!("  sent        {sent} in {:.2} s", elapsed.as_secs_f64());
    println!(
        "  throughput  {:.0} requests/s",
        sent as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  latency     p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("  accepted    {accepted}, refused {refused}");
    println!("  stored      {stored} responses");
    if stored != accepted {
        return Err(format!("{accepted} submissions were accepted but {stored} are stored").into());
    }
    Ok(())
}
