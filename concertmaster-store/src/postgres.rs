//! `PostgresStore`: the store several engine processes share.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use concertmaster_core::connector::url_without_password;

use crate::error::Error;
use crate::sql_store::STATEMENT_CACHE;

type Db = sqlx::Postgres;

/// Serializes migrations between processes starting at once.
/// (0x636f6e636572746d, "concertm" in ASCII.)
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(7165066905352565869)";

/// A [`Store`](concertmaster_core::Store) in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The engine's writes (node executions, run starts and settles),
    /// grouped into shared commits by one writer task.
    writes: tokio::sync::mpsc::Sender<PendingWrite>,
    /// The server's `synchronous_commit`, read at connect.
    synchronous_commit: String,
    /// One connection of its own for lease renewal, so that a renewal
    /// never queues for a connection behind a burst of the engine's other
    /// calls (thousands of runs woken at once) past the lease.
    leases: PgPool,
}

impl PostgresStore {
    /// The connection pool, for the host's own tables in the same database
    /// (API keys, sessions). ConcertMaster's own tables change only through
    /// the `Store` traits.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of up
    /// to 16 connections (and one more, kept for renewing leases) and
    /// migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_pool_size(url, 16).await
    }

    /// Connects with a pool of up to `connections` connections, and one
    /// more for renewing leases.
    pub async fn connect_with_pool_size(url: &str, connections: u32) -> Result<Self, Error> {
        let options: PgConnectOptions = url.parse().map_err(|source| Error::Connect {
            url: url_without_password(url),
            source,
        })?;
        // Other connections than the writer's only ever hold the few dozen
        // other queries.
        let options = options.statement_cache_capacity(STATEMENT_CACHE);
        let connect = |size: u32| {
            PgPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(Duration::from_secs(10))
                // A ping before every query doubles the round trips; a dropped
                // connection shows up as a retryable error on the query itself,
                // which the engine retries on a fresh connection.
                .test_before_acquire(false)
                .connect_with(options.clone())
        };
        let failed = |source| Error::Connect {
            url: url_without_password(url),
            source,
        };
        let pool = connect(connections.max(1)).await.map_err(failed)?;
        let leases = connect(1).await.map_err(failed)?;
        // The writer keeps a connection of its own, unless the pool has
        // only the one every other call needs too.
        let writes = spawn_group_commits(pool.clone(), connections > 1);
        let synchronous_commit = sqlx::query_scalar::<_, String>("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await
            .map_err(|source| Error::Connect {
                url: url_without_password(url),
                source,
            })?;
        if synchronous_commit == "off" {
            tracing::warn!(
                url = %url_without_password(url),
                "synchronous_commit is off on this server: a crash of the database may lose the \
                 last commits, including node transitions the engine acted on; set it to on \
                 (ALTER SYSTEM SET synchronous_commit = on, or per role or database)"
            );
        }
        let store = Self {
            pool,
            writes,
            synchronous_commit,
            leases,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The server's `synchronous_commit`, as read when this store
    /// connected: `on` (the default), `remote_apply`, `remote_write` and
    /// `local` return from a commit once it is on the primary's disk;
    /// `off` returns before, so a crash of the database server may lose the
    /// last commits. [`connect`](Self::connect) logs a warning when it is
    /// `off`.
    pub fn synchronous_commit(&self) -> &str {
        &self.synchronous_commit
    }

    /// Whether a commit is on the database server's disk when a store call
    /// returns (`synchronous_commit` is not `off`): what the engine's
    /// "a step is committed before anything acts on it outside the run"
    /// relies on.
    pub fn commits_are_durable(&self) -> bool {
        self.synchronous_commit != "off"
    }

    async fn migrate(&self) -> Result<(), Error> {
        apply_migrations(&self.pool, Some(MIGRATION_LOCK), |m| m.postgres).await
    }
}

/// The bind parameter at position `n` of a generated statement.
fn parameter(n: usize) -> String {
    format!("${n}")
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    t
}

fn ts_opt(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<chrono::DateTime<chrono::Utc>> {
    t
}

fn read_ts_opt(
    row: &sqlx::postgres::PgRow,
    column: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    use sqlx::Row;
    row.try_get(column)
}

fn read_ts(
    row: &sqlx::postgres::PgRow,
    column: &str,
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    use sqlx::Row;
    row.try_get(column)
}

/// How store transactions begin: Postgres's row locks order the writers.
const BEGIN: &str = "BEGIN";

/// Starts runs, one statement for a whole group: `WITH` sub-statements
/// write each run, its lease and its audit entry (a lone start was five
/// round trips: begin, three inserts, commit).
const RUN_STARTS: &str = include_str!("../queries/run/start_rows.postgres.sql");

/// Settles runs, one statement for a whole group, refused whole through
/// `concertmaster_refuse` (migration 11).
const RUN_SETTLES: &str = include_str!("../queries/run/settle_rows.postgres.sql");

/// What a write into a run holds on the run's lease row until it commits:
/// a claim (`LEASE_CLAIM_LOCK`) waits for it, so a write checked against the
/// old epoch never commits after the lease moved on, and the new holder
/// reads what it wrote. Renewals (`UPDATE ... SET until`) do not conflict.
const LEASE_LOCK: &str = "FOR KEY SHARE";

/// Whether the writes that take locks of their own (claims, suspensions,
/// deliveries, updates) join the group commit. Not here: Postgres commits
/// many connections' transactions side by side, while on the one writer
/// connection each would be a round trip that every other write waits for.
/// Measured on the wait workload of `benches/peers/run`: 1,068 starts/s
/// and 947 resumes/s apart, 755 and 619 grouped.
const LOCKING_WRITES_GROUPED: bool = false;

/// What a claim takes on the lease row before it changes hands. A
/// delivery that ends a wait takes it only without waiting (`SKIP LOCKED`):
/// it holds its wake-up key's lock, and a suspension on that key may hold
/// the lease row while it waits for the key.
const LEASE_CLAIM_LOCK: Option<&str> = Some("FOR UPDATE");

/// Serializes a delivery and a suspension on the same wake-up key (tenant
/// $1, key $2) for the rest of the transaction: under read committed, each
/// would otherwise miss the other's uncommitted row.
const WAKEUP_LOCK: Option<&str> =
    Some("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(10) || $2, 6505))");

/// Takes one run's lease (see the file).
const LEASE_CLAIM_ONE: &str = include_str!("../queries/lease/claim_one.postgres.sql");

/// None: deliveries are not grouped here (`LOCKING_WRITES_GROUPED`), and
/// each claim first locks its lease row.
const LEASE_CLAIM_ROWS: Option<&str> = None;

/// Runs whose lease may be claimed; the locking differs per backend.
const LEASE_CANDIDATES: &str = include_str!("../queries/lease/candidates.postgres.sql");

/// Renews `owner`'s leases on `runs` until `until` in one statement (a
/// statement per lease was a round trip each: a second for 10,000 runs,
/// against a lease that may be a few seconds), on the store's connection
/// kept for it; answers the runs whose lease `owner` no longer holds.
async fn renew_rows(
    store: &PostgresStore,
    owner: &str,
    runs: &[concertmaster_core::RunId],
    until: chrono::DateTime<chrono::Utc>,
) -> concertmaster_core::store::StoreResult<Vec<concertmaster_core::RunId>> {
    let ids: Vec<uuid::Uuid> = runs.iter().map(|id| id.as_uuid()).collect();
    let renewed: std::collections::HashSet<uuid::Uuid> = sqlx::query_scalar::<_, uuid::Uuid>(
        include_str!("../queries/lease/renew_all.postgres.sql"),
    )
    .bind(owner)
    .bind(&ids)
    .bind(until)
    .fetch_all(&store.leases)
    .await
    .map_err(|err| crate::error::store_error(err, "run leases", owner))?
    .into_iter()
    .collect();
    let skipped: Vec<uuid::Uuid> = ids
        .iter()
        .filter(|id| !renewed.contains(id))
        .copied()
        .collect();
    if skipped.is_empty() {
        return Ok(Vec::new());
    }
    // Skipped as locked, given up, or another engine's: only the last are lost.
    let owned: std::collections::HashSet<uuid::Uuid> =
        sqlx::query_scalar::<_, uuid::Uuid>(include_str!("../queries/lease/owned.postgres.sql"))
            .bind(owner)
            .bind(&skipped)
            .fetch_all(&store.leases)
            .await
            .map_err(|err| crate::error::store_error(err, "run leases", owner))?
            .into_iter()
            .collect();
    Ok(runs
        .iter()
        .filter(|id| !renewed.contains(&id.as_uuid()) && !owned.contains(&id.as_uuid()))
        .copied()
        .collect())
}

/// The store the shared SQL code (`shared/`) implements the traits for.
type This = PostgresStore;

// Each backend compiles the shared code against its own `Db`: one copy
// per backend, concrete sqlx code without generic database bounds.
#[allow(clippy::duplicate_mod)]
#[path = "shared/mod.rs"]
mod shared;
use shared::{apply_migrations, spawn_group_commits, PendingWrite};

impl concertmaster_core::Store for PostgresStore {
    fn content_store(&self) -> Option<std::sync::Arc<dyn concertmaster_core::store::ContentStore>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}
