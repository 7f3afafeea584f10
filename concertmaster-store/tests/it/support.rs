//! Fresh databases for each test.

#![allow(dead_code)]

/// A SQLite store in its own temporary file, removed when the test's
/// process ends.
#[cfg(feature = "sqlite")]
pub(crate) async fn fresh_sqlite() -> concertmaster_store::SqliteStore {
    let dir = tempfile::Builder::new()
        .prefix("concertmaster-test-")
        .tempdir()
        .expect("a temporary directory");
    let store = concertmaster_store::SqliteStore::open(dir.path().join("store.db"))
        .await
        .expect("a fresh SQLite store opens");
    // The directory must outlive the store, which outlives the test body.
    std::mem::forget(dir);
    store
}

/// The PostgreSQL server tests run against, from `CONCERTMASTER_POSTGRES_URL`.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_url() -> String {
    match std::env::var("CONCERTMASTER_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "the Postgres tests need a PostgreSQL server: set CONCERTMASTER_POSTGRES_URL \
             (e.g. postgres://root@127.0.0.1:5432/test), or run the tests through scripts/test, \
             which uses the server on 127.0.0.1:5432 or starts a throwaway one"
        ),
    }
}

/// A Postgres store in a schema of its own, so tests never see each
/// other's rows. Schemas left by earlier test processes are dropped first.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_postgres() -> concertmaster_store::PostgresStore {
    concertmaster_store::PostgresStore::connect_with_pool_size(&fresh_postgres_url().await, 4)
        .await
        .expect("a fresh Postgres store connects and migrates")
}

/// A URL whose connections work in a new, empty schema of their own.
#[cfg(feature = "postgres")]
pub(crate) async fn fresh_postgres_url() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);

    let url = postgres_url();
    let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|err| {
        panic!("cannot reach the Postgres server at CONCERTMASTER_POSTGRES_URL: {err}")
    });
    drop_stale_schemas(&admin).await;
    // Made of digits only: safe to put in SQL text.
    let schema = format!(
        "cm_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&admin)
    .await
    .expect("drop schema");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create schema");
    admin.close().await;
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

#[cfg(feature = "postgres")]
async fn drop_stale_schemas(admin: &sqlx::PgPool) {
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'cm\\_test\\_%'",
    )
    .fetch_all(admin)
    .await
    .expect("list test schemas");
    for schema in schemas {
        let pid = schema.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        // Names come from the catalog and match the pattern above.
        if !alive {
            // Another process may be dropping it too; either way it goes.
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE"
            )))
            .execute(admin)
            .await;
        }
    }
}

/// Emits as many items as it holds (`{"item": i}`), whatever its input.
pub(crate) struct FanOut(pub(crate) usize);

#[async_trait::async_trait]
impl concertmaster_core::Node for FanOut {
    async fn execute(
        &self,
        _: &concertmaster_core::NodeContext,
        _: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        let items = (0..self.0)
            .map(|i| {
                serde_json::json!({ "item": i })
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        Ok(concertmaster_core::NodeOutcome::main(items))
    }
}

/// Passes its items on.
pub(crate) struct Pass;

#[async_trait::async_trait]
impl concertmaster_core::Node for Pass {
    async fn execute(
        &self,
        _: &concertmaster_core::NodeContext,
        input: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        Ok(concertmaster_core::NodeOutcome::Done(input))
    }
}
