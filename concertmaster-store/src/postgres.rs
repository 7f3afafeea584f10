//! `PostgresStore`: the store several engine processes share.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};

use crate::error::{redact, Error};
use crate::migrate::{latest, CREATE_LEDGER, MIGRATIONS};
use crate::sql_store::sql_store;

type Db = sqlx::Postgres;

/// Serializes migrations between processes starting at once.
const MIGRATION_LOCK: i64 = 0x636f_6e63_6572_746d; // "concertm"

/// A [`Store`](concertmaster_core::Store) in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) with a pool of up
    /// to 16 connections and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with_pool_size(url, 16).await
    }

    /// Connects with a pool of up to `connections` connections.
    pub async fn connect_with_pool_size(url: &str, connections: u32) -> Result<Self, Error> {
        let options: PgConnectOptions = url.parse().map_err(|source| Error::Connect {
            url: redact(url),
            source,
        })?;
        let pool = PgPoolOptions::new()
            .max_connections(connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| Error::Connect {
                url: redact(url),
                source,
            })?;
        let store = Self { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        let ledger_error = |source| Error::Migration {
            version: 0,
            description: "migration ledger",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(ledger_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(ledger_error)?;
        tx.execute(CREATE_LEDGER).await.map_err(ledger_error)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM concertmaster_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(ledger_error)?;
        if applied > latest() {
            return Err(Error::SchemaTooNew {
                found: applied,
                known: latest(),
            });
        }
        for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
            let failed = |source| Error::Migration {
                version: migration.version,
                description: migration.description,
                source,
            };
            tx.execute(migration.postgres).await.map_err(failed)?;
            sqlx::query(
                "INSERT INTO concertmaster_migrations (version, description) VALUES ($1, $2)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            tracing::info!(version = migration.version, "postgres store migrated");
        }
        tx.commit().await.map_err(ledger_error)?;
        Ok(())
    }
}

impl PostgresStore {
    /// Saves one node execution in its own commit: Postgres commits
    /// concurrently from many connections, so grouping buys little.
    async fn write_execution(
        &self,
        tenant: &concertmaster_core::TenantId,
        execution: &concertmaster_core::NodeExecution,
    ) -> concertmaster_core::StoreResult<u64> {
        save_execution(&self.pool, tenant, execution).await
    }
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

/// Runs whose lease may be claimed; the locking differs per backend.
const LEASE_CANDIDATES: &str = include_str!("../queries/lease/candidates.postgres.sql");

sql_store!(PostgresStore);
