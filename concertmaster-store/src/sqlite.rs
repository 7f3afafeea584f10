//! `SqliteStore`: one file, WAL mode; the embedded default for programs that persist.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::error::{redact, Error};
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
    /// Node executions to save, grouped into shared commits by one writer task.
    writes: tokio::sync::mpsc::Sender<PendingWrite>,
}

/// A node execution waiting for the group commit, and who to tell.
#[derive(Debug)]
struct PendingWrite {
    tenant: concertmaster_core::TenantId,
    execution: concertmaster_core::NodeExecution,
    done: tokio::sync::oneshot::Sender<concertmaster_core::StoreResult<u64>>,
}

/// Most node executions one commit carries.
const GROUP_COMMIT_MAX: usize = 128;

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
        let (writes, queue) = tokio::sync::mpsc::channel(4 * GROUP_COMMIT_MAX);
        tokio::spawn(group_commits(pool.clone(), queue));
        let store = Self { pool, writes };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        // One writer connection: migrations need no lock beyond it.
        apply_migrations(&self.pool, None, |m| m.sqlite).await
    }
}

impl SqliteStore {
    /// Saves one node execution through the group commit: it returns once
    /// the commit that carries it is durable.
    async fn write_execution(
        &self,
        tenant: &concertmaster_core::TenantId,
        execution: &concertmaster_core::NodeExecution,
    ) -> concertmaster_core::StoreResult<u64> {
        let gone = || concertmaster_core::StoreError::Unavailable {
            message: "the SQLite writer stopped".into(),
        };
        let (done, outcome) = tokio::sync::oneshot::channel();
        let write = PendingWrite {
            tenant: tenant.clone(),
            execution: execution.clone(),
            done,
        };
        self.writes.send(write).await.map_err(|_| gone())?;
        outcome.await.map_err(|_| gone())?
    }
}

/// The writer task: takes every node execution waiting, saves them in one
/// transaction, and answers each caller once it is committed. Under load
/// one commit carries many transitions; alone, a write commits at once.
async fn group_commits(pool: SqlitePool, mut queue: tokio::sync::mpsc::Receiver<PendingWrite>) {
    let mut batch = Vec::with_capacity(GROUP_COMMIT_MAX);
    while queue.recv_many(&mut batch, GROUP_COMMIT_MAX).await > 0 {
        let results = commit_group(&pool, &batch).await;
        for (write, result) in batch.drain(..).zip(results) {
            // The caller may have given up waiting; nothing to tell then.
            let _ = write.done.send(result);
        }
    }
}

async fn commit_group(
    pool: &SqlitePool,
    batch: &[PendingWrite],
) -> Vec<concertmaster_core::StoreResult<u64>> {
    use crate::error::store_error;
    let failed_all = |err: sqlx::Error| -> Vec<_> {
        let err = store_error(err, "node executions", format!("group of {}", batch.len()));
        batch.iter().map(|_| Err(err.clone())).collect()
    };
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(err) => return failed_all(err),
    };
    let mut results = Vec::with_capacity(batch.len());
    for write in batch {
        // A failing statement rolls back only itself; the others still commit.
        results.push(save_execution(&mut *tx, &write.tenant, &write.execution).await);
    }
    match tx.commit().await {
        Ok(()) => results,
        Err(err) => failed_all(err),
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

/// Runs whose lease may be claimed; the locking differs per backend.
const LEASE_CANDIDATES: &str = include_str!("../queries/lease/candidates.sqlite.sql");

sql_store!(SqliteStore);
