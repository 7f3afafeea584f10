//! A host service embedding ConcertMaster: the template to copy.
//!
//! An axum server on the embedded default (a SQLite file) or Postgres,
//! with the engine, forms, datasets and ERP connections of one store, a
//! JSON API under `/api` where every call is scoped to the tenant of its
//! API key and checked against the key's role, the audit log naming the key
//! that acted, and `/metrics` in Prometheus' text format.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use concertmaster_server_example::{Config, Server};
//!
//! let server = Server::build(&Config::sqlite("concertmaster.db")).await?;
//! let admin = server.keys().issue("acme", "ops@acme", concertmaster_server_example::Role::Admin).await?;
//! println!("admin key: {}", admin.key);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! server.serve(listener).await?;
//! # Ok(()) }
//! ```

mod api;
mod auth;
mod doc;
mod error;
mod keys;
mod limit;
mod pages;
mod portal;

use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{middleware, Router};
use concertmaster_core::{form::FormSchema, store::Backend, Engine, TenantId, WorkflowDefinition};
use concertmaster_erp::{Connections, KeyRing};
use concertmaster_nodes::forms::{Forms, Outbox};
use concertmaster_nodes::{Datasets, SubWorkflows};
use concertmaster_store::{PostgresStore, SqliteStore};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub use auth::{Action, Caller, Role};
pub use error::ApiError;
pub use keys::{ApiKeys, Db, IssuedKey, KeyRecord, Revocation};
pub use limit::{PortalLimits, RateLimit};

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: the embedded default.
    Sqlite(std::path::PathBuf),
    /// A Postgres URL, shared by every instance of the service.
    Postgres(String),
}

/// How the server is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database.
    pub database: Database,
    /// Where form links point (`https://forms.example/f/`).
    pub portal_url: String,
    /// The key that seals connection configs (32 bytes) and its id.
    pub sealing_key: (String, [u8; 32]),
    /// The built example editor (`examples/editor/dist`), served at
    /// `/editor/` when set.
    pub editor_dir: Option<std::path::PathBuf>,
    /// The bearer token `/metrics` asks for (`Authorization: Bearer
    /// TOKEN`). Without one `/metrics` is off: its figures name every
    /// tenant and workflow, and are no one's business but the operator's.
    pub metrics_token: Option<String>,
    /// The proxies in front of the service whose `X-Forwarded-For` is
    /// believed. A submission's address (kept with a consent) is the
    /// socket's peer, unless that peer is one of these: then the last
    /// address of the header that is not a trusted proxy.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// How many requests the public form portal takes per client address
    /// and per link before it answers `429 Too Many Requests`.
    pub portal_limits: PortalLimits,
}

impl Config {
    /// On the SQLite file `path`, with a development sealing key.
    pub fn sqlite(path: impl Into<std::path::PathBuf>) -> Self {
        Self::with(Database::Sqlite(path.into()))
    }

    /// On the Postgres database `url`, with a development sealing key.
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::with(Database::Postgres(url.into()))
    }

    fn with(database: Database) -> Self {
        Self {
            database,
            portal_url: "http://127.0.0.1:8080/f/".into(),
            // A development key; production reads its own from a secret manager.
            sealing_key: ("dev".into(), *b"concertmaster-dev-sealing-key-32"),
            editor_dir: None,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            portal_limits: PortalLimits::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] concertmaster_store::Error),
    /// The host's own tables could not be set up.
    #[error("API keys: {0}")]
    Keys(#[from] sqlx::Error),
    /// The engine could not be built.
    #[error("engine: {0}")]
    Engine(#[from] concertmaster_core::Error),
    /// Node registration failed.
    #[error("nodes: {0}")]
    Registry(#[from] concertmaster_core::node::RegistryError),
    /// The sealing key is unusable.
    #[error("sealing key: {0}")]
    Crypto(#[from] concertmaster_erp::CryptoError),
    /// Listening or serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    engine: Engine,
    forms: Forms,
    connections: Connections,
    keys: ApiKeys,
    metrics: PrometheusHandle,
    metrics_token: Option<Arc<str>>,
    trusted_proxies: Arc<[std::net::IpAddr]>,
    portal_limits: Arc<limit::PortalLimiter>,
    editor_dir: Option<Arc<std::path::PathBuf>>,
}

/// One recorder per process: metrics are process-wide, servers (in tests,
/// several) share it.
fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder installed by the host wins; /metrics is then empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The service: engine, forms, connections and the HTTP routes over them.
pub struct Server {
    state: AppState,
    datasets: Datasets,
    outbox: Outbox,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the database, builds the engine with every built-in node, the
    /// forms nodes, datasets and the ERP export nodes, and the API keys.
    pub async fn build(config: &Config) -> Result<Self, ServerError> {
        let (store, db): (Arc<dyn Backend>, Db) = match &config.database {
            Database::Sqlite(path) => {
                let store = SqliteStore::open(path).await?;
                let db = Db::Sqlite(store.pool().clone());
                (Arc::new(store), db)
            }
            Database::Postgres(url) => {
                let store = PostgresStore::connect(url).await?;
                let db = Db::Postgres(store.pool().clone());
                (Arc::new(store), db)
            }
        };
        let keys = ApiKeys::new(db).await?;
        // E-mail delivery is the host's choice; the demo keeps messages in an outbox.
        let outbox = Outbox::new();
        let forms = Forms::new(store.clone(), outbox.clone(), config.portal_url.clone());
        let datasets = Datasets::new(store.clone());
        let connections = Connections::new(
            store.clone(),
            KeyRing::new(config.sealing_key.0.clone(), config.sealing_key.1)?,
        );
        let subs = SubWorkflows::new();
        let mut registry = concertmaster_nodes::registry();
        forms.register_nodes(&mut registry)?;
        datasets.register_nodes(&mut registry)?;
        subs.register_nodes(&mut registry)?;
        connections.register_nodes(&mut registry)?;
        let engine = Engine::builder()
            .shared_store(store)
            .registry(registry)
            .build()
            .await?;
        subs.attach(&engine);
        connections.attach(&engine);
        Ok(Self {
            state: AppState {
                engine,
                forms,
                connections,
                keys,
                metrics: metrics_handle(),
                metrics_token: config.metrics_token.as_deref().map(Arc::from),
                trusted_proxies: config.trusted_proxies.clone().into(),
                portal_limits: Arc::new(limit::PortalLimiter::new(config.portal_limits)),
                editor_dir: config.editor_dir.clone().map(Arc::new),
            },
            datasets,
            outbox,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// The forms service.
    pub fn forms(&self) -> &Forms {
        &self.state.forms
    }

    /// The datasets the `collect` node fills.
    pub fn datasets(&self) -> &Datasets {
        &self.datasets
    }

    /// The messages the forms nodes sent (the demo delivers none; a host
    /// plugs in its `Notifier`, e.g. SMTP).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The API keys.
    pub fn keys(&self) -> &ApiKeys {
        &self.state.keys
    }

    /// The routes: `/api/...` (API key required), `/metrics` (its bearer
    /// token required), `/healthz`. Serve them with the peer's address
    /// (`into_make_service_with_connect_info::<SocketAddr>()`, as
    /// [`Server::serve`] does): without it, submissions record no address.
    pub fn router(&self) -> Router {
        let api = api::routes().layer(middleware::from_fn_with_state(
            self.state.clone(),
            auth::authenticate,
        ));
        Router::new()
            .nest("/api", api)
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(metrics))
            .route("/openapi.json", get(openapi))
            .route("/f/{token}", get(portal::show).post(portal::submit))
            .route(
                "/inbox",
                get(|| async { Html(include_str!("../pages/inbox.html")) }),
            )
            .route(
                "/runs/view",
                get(|| async { Html(include_str!("../pages/run.html")) }),
            )
            .route(
                "/editor",
                get(|| async { axum::response::Redirect::permanent("/editor/") }),
            )
            .route("/editor/", get(pages::editor_index))
            .route("/editor/{*path}", get(pages::editor_asset))
            .with_state(self.state.clone())
    }

    /// Serves the routes on `listener` until ctrl-c.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> Result<(), ServerError> {
        let engine = self.state.engine.clone();
        let app = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        engine.shutdown();
        Ok(())
    }

    /// The demo data of tenant `acme`: the supplier profile form and the
    /// supplier questionnaire workflow, unless they are there already.
    pub async fn seed_demo(&self, tenant: &TenantId) -> Result<(), ApiError> {
        if self
            .state
            .forms
            .form(tenant, &"supplier-profile".into(), None)
            .await
            .is_err()
        {
            self.state
                .forms
                .publish(tenant, supplier_profile()?)
                .await?;
        }
        let id = "supplier-questionnaire".into();
        if self.state.engine.versions(tenant, &id).await?.is_empty() {
            let def = WorkflowDefinition::from_json(include_str!(
                "../../workflows/supplier-questionnaire.json"
            ))
            .map_err(ApiError::internal)?;
            concertmaster_core::run::acting_as("demo-seed", self.state.engine.publish(tenant, def))
                .await?;
        }
        Ok(())
    }
}

async fn openapi() -> impl IntoResponse {
    axum::Json(<api::ApiDoc as utoipa::OpenApi>::openapi())
}

/// `/metrics`, for the bearer of the configured token only.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let Some(token) = state.metrics_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are off: set Config::metrics_token (CONCERTMASTER_METRICS_TOKEN for the example binary)\n",
        )
            .into_response();
    };
    let offered = auth::bearer(&headers).unwrap_or_default();
    if !auth::same_secret(offered.as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "send the metrics token as Authorization: Bearer TOKEN\n",
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// The supplier profile form of the demo, the contact e-mail personal
/// (shared with the supplier onboarding example).
fn supplier_profile() -> Result<FormSchema, ApiError> {
    serde_json::from_str(include_str!("../../workflows/supplier-profile.form.json"))
        .map_err(ApiError::internal)
}
