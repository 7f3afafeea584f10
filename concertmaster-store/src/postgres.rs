//! `PostgresStore`: the store several engine processes share.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use concertmaster_core::url_without_password;

use crate::error::Error;
use crate::form_store::{connection_store, content_store, dataset_store, form_store};
use crate::sql_store::{sql_store, STATEMENT_CACHE};

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
}

impl PostgresStore {
    /// The connection pool, for the host's own tables in the same database
    /// (API keys, sessions). ConcertMaster's own tables change only through
    /// the `Store` traits.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of up
    /// to 16 connections and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_pool_size(url, 16).await
    }

    /// Connects with a pool of up to `connections` connections.
    pub async fn connect_with_pool_size(url: &str, connections: u32) -> Result<Self, Error> {
        let options: PgConnectOptions = url.parse().map_err(|source| Error::Connect {
            url: url_without_password(url),
            source,
        })?;
        // Other connections than the writer's only ever hold the few dozen
        // other queries.
        let options = options.statement_cache_capacity(STATEMENT_CACHE);
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            // A ping before every query doubles the round trips; a dropped
            // connection shows up as a retryable error on the query itself,
            // which the engine retries on a fresh connection.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                url: url_without_password(url),
                source,
            })?;
        // The writer keeps a connection of its own, unless the pool has
        // only the one every other call needs too.
        let writes = spawn_group_commits(pool.clone(), connections > 1);
        let store = Self { pool, writes };
        store.migrate().await?;
        Ok(store)
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

/// Runs whose lease may be claimed; the locking differs per backend.
const LEASE_CANDIDATES: &str = include_str!("../queries/lease/candidates.postgres.sql");

sql_store!(PostgresStore);
form_store!(PostgresStore);
dataset_store!(PostgresStore);
connection_store!(PostgresStore);
content_store!(PostgresStore);
