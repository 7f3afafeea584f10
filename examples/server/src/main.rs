//! Starts the example host service on 127.0.0.1 with demo data.
//!
//! ```text
//! cargo run -p concertmaster-server-example                 # SQLite file concertmaster-server.db
//! cargo run -p concertmaster-server-example -- --postgres postgres://app@127.0.0.1/app
//! ```
//! `CONCERTMASTER_DATABASE_URL` (a `postgres://` URL or a SQLite path) and
//! `CONCERTMASTER_BIND` (default `127.0.0.1:8080`) set the same. Logs are JSON
//! lines on stdout (`RUST_LOG` filters them).

use concertmaster_core::TenantId;
use concertmaster_server_example::{Config, Role, Server};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let mut args = std::env::args().skip(1);
    let mut database = std::env::var("CONCERTMASTER_DATABASE_URL").ok();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--postgres" | "--sqlite" => database = args.next(),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; use --postgres URL or --sqlite PATH"
                )
                .into())
            }
        }
    }
    let database = database.unwrap_or_else(|| "concertmaster-server.db".into());
    let mut config = if database.starts_with("postgres://") || database.starts_with("postgresql://")
    {
        Config::postgres(database.clone())
    } else {
        Config::sqlite(database.clone())
    };
    let bind = std::env::var("CONCERTMASTER_BIND").unwrap_or_else(|_| "127.0.0.1:8080".into());
    config.portal_url = format!("http://{bind}/f/");

    let server = Server::build(&config).await?;
    let tenant = TenantId::new("acme");
    server.seed_demo(&tenant).await?;
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("ConcertMaster example server on http://{bind} (data: {database})");
    println!("  API       http://{bind}/api/workflows");
    println!("  metrics   http://{bind}/metrics");
    for role in [Role::Admin, Role::Editor, Role::Reviewer, Role::Viewer] {
        let issued = server
            .keys()
            .issue("acme", &format!("demo-{}", role.as_str()), role)
            .await?;
        println!("  {:<9} key for tenant acme: {}", role.as_str(), issued.key);
    }
    server.serve(listener).await?;
    Ok(())
}
