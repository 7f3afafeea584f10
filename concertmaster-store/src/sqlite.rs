//! `SqliteStore`: one file, WAL mode; the embedded default for programs that persist.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use concertmaster_core::connector::url_without_password;

use crate::error::Error;
use crate::sql_store::STATEMENT_CACHE;

type Db = sqlx::Sqlite;

/// What a commit of a [`SqliteStore`] survives: SQLite's `synchronous`
/// setting, in WAL mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: every commit is synced to disk before the
    /// call returns; it survives a process crash and a power loss or an
    /// operating-system crash. The default. The engine's writes share
    /// commits (group commit), so one sync serves many node transitions.
    #[default]
    Full,
    /// `synchronous = NORMAL`: a commit survives a crash of the process;
    /// a power loss or an operating-system crash may lose the last commits
    /// (the database is never corrupted). Faster: WAL syncs only at
    /// checkpoints.
    Normal,
}

/// A [`Store`](concertmaster_core::Store) in one SQLite file.
///
/// Two connections: the engine's writes (node executions, run starts and
/// settles) go through one, held by the group commit's writer task; every
/// other call goes through the other, the pool's. Store transactions take
/// the write lock as they begin, so the two never deadlock. WAL mode, with
/// [`Durability::Full`] by default: a call that wrote returns once its
/// commit is on disk, so it survives a power loss, not only a crash of the
/// process ([`Durability::Normal`] trades that for speed; see
/// [`open_with`](Self::open_with)). An in-memory database
/// (`sqlite::memory:`) has the one connection only.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The engine's writes (node executions, run starts and settles),
    /// grouped into shared commits by one writer task.
    writes: tokio::sync::mpsc::Sender<PendingWrite>,
    durability: Durability,
}

impl SqliteStore {
    /// The connection pool, for the host's own tables in the same database
    /// (API keys, sessions). ConcertMaster's own tables change only through
    /// the `Store` traits. A transaction of the host's that reads before it
    /// writes should come from [`begin`](Self::begin), which takes the
    /// write lock at once.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Opens (creating if needed) the database at `path` and migrates it,
    /// with [`Durability::Full`].
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, Error> {
        Self::open_with(path, Durability::Full).await
    }

    /// Opens (creating if needed) the database at `path` with
    /// `durability`, and migrates it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use concertmaster_store::{Durability, SqliteStore};
    ///
    /// // Survives a crash of the process; a power loss may lose the last commits.
    /// # let dir = std::env::temp_dir().join(format!("concertmaster-durability-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let store = SqliteStore::open_with(dir.join("workflows.db"), Durability::Normal).await?;
    /// assert_eq!(store.durability(), Durability::Normal);
    /// # drop(store);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok(()) }
    /// ```
    pub async fn open_with(
        path: impl AsRef<std::path::Path>,
        durability: Durability,
    ) -> Result<Self, Error> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::connect_with(options, &path.display().to_string(), durability).await
    }

    /// What a commit of this store survives.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Connects to a `sqlite:` URL (`sqlite://data.db`, `sqlite::memory:`)
    /// and migrates the database, with [`Durability::Full`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_durably(url, Durability::Full).await
    }

    /// Connects to a `sqlite:` URL with `durability`, and migrates the
    /// database.
    pub async fn connect_durably(url: &str, durability: Durability) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| Error::Connect {
                url: url_without_password(url),
                source,
            })?
            .create_if_missing(true);
        Self::connect_with(options, url, durability).await
    }

    async fn connect_with(
        options: SqliteConnectOptions,
        url: &str,
        durability: Durability,
    ) -> Result<Self, Error> {
        let synchronous = match durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // One connection, so the cache stays bounded (the peer
            // benchmark's process grew by 12 MB with caches this size on
            // both stores).
            .statement_cache_capacity(STATEMENT_CACHE);
        let connect = || async {
            SqlitePoolOptions::new()
                .max_connections(1)
                // A file connection does not drop; a ping would cost a
                // round trip to sqlx's worker thread per query.
                .test_before_acquire(false)
                .connect_with(options.clone())
                .await
                .map_err(|source| Error::Connect {
                    url: url_without_password(url),
                    source,
                })
        };
        let pool = connect().await?;
        // The writer keeps a connection of its own: taking the pool's one
        // per group cost a round trip to sqlx's worker thread each time it
        // went back (sqlx checks a returned connection) and made every group
        // queue behind the host's and the engine's reads. An in-memory
        // database lives in its one connection, so the writer shares it.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let writes = if in_memory {
            spawn_group_commits(pool.clone(), false)
        } else {
            spawn_group_commits(connect().await?, true)
        };
        let store = Self {
            pool,
            writes,
            durability,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), Error> {
        // Each migration's `BEGIN IMMEDIATE` takes the write lock before
        // the applied version is read: processes opening one file at once
        // migrate one at a time.
        apply_migrations(&self.pool, None, |m| m.sqlite).await
    }
}

/// The bind parameter at position `n` of a generated statement: anonymous.
/// SQLite finds a named parameter (`$N`, `?N`) by walking the list of all
/// of them, so binding a group commit's 1,664 named parameters took time
/// quadratic in the group's size; anonymous ones bind in order.
fn parameter(_n: usize) -> String {
    "?".to_string()
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

/// How store transactions begin: with the write lock taken at once. The
/// writer task and the pool write on two connections; a transaction that
/// read first and wanted the lock later would fail with "database is
/// locked" (no waiting helps) had the other committed in between.
const BEGIN: &str = "BEGIN IMMEDIATE";

/// Starts runs, one statement for a whole group, through the write-only
/// view `run_starts` of migration 10 (a lone start was five round trips to
/// SQLite's thread: begin, three inserts, commit).
const RUN_STARTS: &str = include_str!("../queries/run/start_rows.sqlite.sql");

/// Settles runs, one statement for a whole group, through the view
/// `run_settles`, whose trigger refuses the statement whole.
const RUN_SETTLES: &str = include_str!("../queries/run/settle_rows.sqlite.sql");

/// SQLite writes one transaction at a time: a write checked against a
/// lease's epoch commits before any claim of it begins.
const LEASE_LOCK: &str = "";

/// Whether the writes that take locks of their own (claims, suspensions,
/// deliveries, updates) join the group commit. Here they must: SQLite has
/// one write lock, and a connection that waits for it sleeps in its busy
/// handler for milliseconds at a time.
const LOCKING_WRITES_GROUPED: bool = true;

const LEASE_CLAIM_LOCK: Option<&str> = None;

/// SQLite's transactions take the write lock as they begin: a delivery and
/// a suspension on one key are serialized without a lock of their own.
const WAKEUP_LOCK: Option<&str> = None;

/// Takes one run's lease (see the file).
const LEASE_CLAIM_ONE: &str = include_str!("../queries/lease/claim_one.sql");

/// Takes the leases of a group's deliveries in one statement (see the file).
const LEASE_CLAIM_ROWS: Option<&str> = Some(include_str!("../queries/lease/claim_rows.sqlite.sql"));

/// Runs whose lease may be claimed; the locking differs per backend.
const LEASE_CANDIDATES: &str = include_str!("../queries/lease/candidates.sqlite.sql");

/// Renews `owner`'s leases on `runs` until `until`, a statement per lease
/// in one transaction (SQLite runs in this process: a statement costs no
/// round trip); answers the runs whose lease `owner` no longer holds.
async fn renew_rows(
    store: &SqliteStore,
    owner: &str,
    runs: &[concertmaster_core::RunId],
    until: chrono::DateTime<chrono::Utc>,
) -> concertmaster_core::store::StoreResult<Vec<concertmaster_core::RunId>> {
    let fail = |err| crate::error::store_error(err, "run leases", owner);
    let mut tx = store.pool.begin_with(BEGIN).await.map_err(fail)?;
    let mut lost = Vec::new();
    for id in runs {
        let renewed = sqlx::query(include_str!("../queries/lease/renew.sql"))
            .bind(id.as_uuid())
            .bind(owner)
            .bind(ts(until))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        if renewed.rows_affected() == 0 {
            // Given up when its run settled (no owner), or another engine's.
            let holder =
                sqlx::query_scalar::<_, String>(include_str!("../queries/lease/holder.sql"))
                    .bind(id.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(fail)?;
            if holder.is_none_or(|holder| !holder.is_empty()) {
                lost.push(*id);
            }
        }
    }
    tx.commit().await.map_err(fail)?;
    Ok(lost)
}

/// The store the shared SQL code (`shared/`) implements the traits for.
type This = SqliteStore;

// Each backend compiles the shared code against its own `Db`: one copy
// per backend, concrete sqlx code without generic database bounds.
#[allow(clippy::duplicate_mod)]
#[path = "shared/mod.rs"]
mod shared;
use shared::{apply_migrations, spawn_group_commits, PendingWrite};

impl concertmaster_core::Store for SqliteStore {
    fn content_store(&self) -> Option<std::sync::Arc<dyn concertmaster_core::store::ContentStore>> {
        Some(std::sync::Arc::new(self.clone()))
    }
}
