//! Starts the example host service on 127.0.0.1 with demo data.
//!
//! ```text
//! cargo run -p concertmaster-server-example                 # SQLite file concertmaster-server.db
//! cargo run -p concertmaster-server-example -- --postgres postgres://app@127.0.0.1/app
//! cargo run -p concertmaster-server-example -- --editor examples/editor/dist
//! ```
//! `CONCERTMASTER_DATABASE_URL` (a `postgres://` URL or a SQLite path) and
//! `CONCERTMASTER_BIND` (default `127.0.0.1:8080`) set the same. Logs are JSON
//! lines on stdout (`RUST_LOG` filters them).
//!
//! `CONCERTMASTER_METRICS_TOKEN` turns `/metrics` on for its bearer;
//! `CONCERTMASTER_TRUSTED_PROXIES` (comma-separated addresses) names the
//! proxies whose `X-Forwarded-For` is believed;
//! `CONCERTMASTER_PORTAL_LIMIT_PER_CLIENT` and `..._PER_LINK` set the form
//! portal's rate limits in requests a minute (bursts of half that), or
//! `off` (defaults: 60 and 20).
//!
//! `--e2e-scenario` is what the browser test starts: a fresh SQLite file, a
//! free port, one run waiting for a supplier's answer, and one JSON line on
//! stdout with the URLs and keys the test needs.

use concertmaster_core::TenantId;
use concertmaster_server_example::{Config, RateLimit, Role, Server};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut database = std::env::var("CONCERTMASTER_DATABASE_URL").ok();
    let mut editor = None;
    let mut scenario = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" | "--sqlite" => database = args.next(),
            "--editor" => editor = args.next().map(std::path::PathBuf::from),
            "--e2e-scenario" => scenario = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --postgres URL, --sqlite PATH, --editor DIR or --e2e-scenario"
                )
                .into())
            }
        }
    }
    if scenario {
        return e2e_scenario(editor).await;
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let database = database.unwrap_or_else(|| "concertmaster-server.db".into());
    let mut config = if database.starts_with("postgres://") || database.starts_with("postgresql://")
    {
        Config::postgres(database.clone())
    } else {
        Config::sqlite(database.clone())
    };
    let bind = std::env::var("CONCERTMASTER_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    config.portal_url = format!("http://{bind}/f/");
    config.editor_dir = editor;
    config.metrics_token = std::env::var("CONCERTMASTER_METRICS_TOKEN").ok();
    config.trusted_proxies = trusted_proxies()?;
    if let Some(limit) = rate_limit("CONCERTMASTER_PORTAL_LIMIT_PER_CLIENT")? {
        config.portal_limits.per_client = limit;
    }
    if let Some(limit) = rate_limit("CONCERTMASTER_PORTAL_LIMIT_PER_LINK")? {
        config.portal_limits.per_link = limit;
    }

    let server = Server::build(&config).await?;
    let tenant = TenantId::new("acme");
    server.seed_demo(&tenant).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("ConcertMaster example server on http://{bind} (data: {database})");
    println!("  API           http://{bind}/api/workflows   (OpenAPI: http://{bind}/openapi.json)");
    println!("  review inbox  http://{bind}/inbox");
    println!("  editor        http://{bind}/editor/");
    match &config.metrics_token {
        Some(_) => println!(
            "  metrics       http://{bind}/metrics   (Authorization: Bearer $CONCERTMASTER_METRICS_TOKEN)"
        ),
        None => println!("  metrics       off (set CONCERTMASTER_METRICS_TOKEN to serve /metrics)"),
    }
    // The demo keys of an earlier start (printed in its output) stop
    // working: only the ones printed now do.
    let earlier: Vec<String> = server
        .keys()
        .list("acme")
        .await?
        .into_iter()
        .filter(|key| key.name.starts_with("demo-"))
        .map(|key| key.id)
        .collect();
    for role in [Role::Admin, Role::Editor, Role::Reviewer, Role::Viewer] {
        let issued = server
            .keys()
            .issue("acme", &format!("demo-{}", role.as_str()), role)
            .await?;
        println!("  {:<9} key for tenant acme: {}", role.as_str(), issued.key);
    }
    for id in earlier {
        server.keys().revoke("acme", &id).await?;
    }
    server.serve(listener).await?;
    Ok(())
}

/// One supplier asked for their profile: the run waits for the answer, then
/// for a reviewer, then collects the approved answer.
async fn e2e_scenario(
    editor: Option<std::path::PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = Config::sqlite(dir.path().join("e2e.db"));
    config.portal_url = format!("{base}/f/");
    config.editor_dir = editor;
    let server = Server::build(&config).await?;
    let tenant = TenantId::new("acme");
    server.seed_demo(&tenant).await?;
    let definition = concertmaster_core::WorkflowDefinition::from_json(
        &json!({
            "id": "onboard-one", "name": "Onboard one supplier",
            "nodes": [
                { "id": "start", "type": "manual" },
                { "id": "send", "type": "send_form", "config": { "formId": "supplier-profile", "recipientField": "/email" } },
                { "id": "wait", "type": "wait_for_responses", "config": { "mode": "all" } },
                { "id": "review", "type": "review" },
                { "id": "collect", "type": "collect", "config": { "dataset": "approved-suppliers" } }
            ],
            "edges": [
                { "source": "start", "target": "send" },
                { "source": "send", "target": "wait" },
                { "source": "wait", "target": "review" },
                { "source": "review", "sourcePort": "approved", "target": "collect" }
            ]
        })
        .to_string(),
    )?;
    let workflow = server.engine().publish(&tenant, definition).await?;
    let run = server
        .engine()
        .start(&workflow, json!({ "email": "ap@nordwind.example" }))
        .await?;
    server.engine().settled(&tenant, run).await?;
    let link = server
        .outbox()
        .messages_to("ap@nordwind.example")
        .into_iter()
        .next()
        .ok_or("the form link was not sent")?
        .link;
    let reviewer = server
        .keys()
        .issue("acme", "e2e-reviewer", Role::Reviewer)
        .await?;
    // Designs, runs and reads runs with their items (personal data).
    let admin = server
        .keys()
        .issue("acme", "e2e-admin", Role::Admin)
        .await?;
    println!(
        "{}",
        json!({ "base": base, "formUrl": link, "reviewerKey": reviewer.key, "adminKey": admin.key, "runId": run.to_string() })
    );
    server.serve(listener).await?;
    drop(dir);
    Ok(())
}

/// The proxies named in `CONCERTMASTER_TRUSTED_PROXIES` (comma-separated
/// addresses; none when unset).
fn trusted_proxies() -> Result<Vec<std::net::IpAddr>, String> {
    std::env::var("CONCERTMASTER_TRUSTED_PROXIES")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse().map_err(|err| {
                format!("CONCERTMASTER_TRUSTED_PROXIES: {p:?} is not an IP address: {err}")
            })
        })
        .collect()
}

/// The rate limit in `var`: `N` requests a minute, in bursts of up to half
/// of them, or `off`; `None` when unset.
fn rate_limit(var: &str) -> Result<Option<Option<RateLimit>>, String> {
    let Ok(value) = std::env::var(var) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.eq_ignore_ascii_case("off") {
        return Ok(Some(None));
    }
    match value.parse::<u32>() {
        Ok(per_minute) if per_minute > 0 => Ok(Some(Some(RateLimit::per_minute(
            per_minute,
            per_minute / 2,
        )))),
        _ => Err(format!(
            "{var}: {value:?} is neither a number of requests a minute (1 or more) nor `off`"
        )),
    }
}
