//! `SqliteStore`: one file, WAL mode; the embedded default for programs that persist.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Executor, SqlitePool};

use crate::error::{redact, Error};
use crate::migrate::{latest, CREATE_LEDGER, MIGRATIONS};
use crate::sql_store::sql_store;

type Db = sqlx::Sqlite;

/// A [`Store`](concertmaster_core::Store) in one SQLite file.
///
/// Writes go through one connection, so transactions never contend; WAL
/// mode with `synchronous = NORMAL` keeps every commit durable across a
/// process crash (a power loss may drop the last commits, never corrupt).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_with(options, &path.display().to_string()).await
    }

    /// Connects to a `sqlite:` URL (`sqlite://data.db`, `sqlite::memory:`)
    /// and migrates the database.
    pub async fn connect(url: &str) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| Error::Connect {
                url: redact(url),
                source,
            })?
            .create_if_missing(true);
        Self::connect_with(options, url).await
    }

    async fn connect_with(options: SqliteConnectOptions, url: &str) -> Result<Self, Error> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
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
        self.pool
            .execute(CREATE_LEDGER)
            .await
            .map_err(ledger_error)?;
        let applied: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM concertmaster_migrations")
                .fetch_one(&self.pool)
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
            let mut tx = self.pool.begin().await.map_err(failed)?;
            tx.execute(migration.sqlite).await.map_err(failed)?;
            sqlx::query(
                "INSERT INTO concertmaster_migrations (version, description) VALUES ($1, $2)",
            )
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(version = migration.version, "sqlite store migrated");
        }
        Ok(())
    }
}

/// Timestamps are stored as microseconds since the epoch: exact, and
/// ordered as numbers.
fn ts(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

fn ts_opt(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t.map(ts)
}

fn read_ts_opt(
    row: &sqlx::sqlite::SqliteRow,
    column: &str,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, sqlx::Error> {
    use sqlx::Row;
    row.try_get::<Option<i64>, _>(column)?
        .map(|micros| {
            chrono::DateTime::from_timestamp_micros(micros).ok_or_else(|| {
                sqlx::Error::ColumnDecode {
                    index: column.to_string(),
                    source: format!("{micros} is out of range for a timestamp").into(),
                }
            })
        })
        .transpose()
}

fn read_ts(
    row: &sqlx::sqlite::SqliteRow,
    column: &str,
) -> Result<chrono::DateTime<chrono::Utc>, sqlx::Error> {
    read_ts_opt(row, column)?.ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: "unexpected NULL".into(),
    })
}

sql_store!(SqliteStore);
