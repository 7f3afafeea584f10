//! API keys: bound to a tenant and a role, stored as SHA-256 hashes in the
//! host's own table beside ConcertMaster's, shown in the clear once.

use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, SqlitePool};

use crate::auth::Role;

/// Where the host's own tables live: the same database as the store.
#[derive(Debug, Clone)]
pub enum Db {
    /// The SQLite file.
    Sqlite(SqlitePool),
    /// The Postgres database.
    Postgres(PgPool),
}

/// Runs the same statement (`$N` parameters work in both) on either pool.
macro_rules! on_db {
    ($db:expr, |$q:ident| $body:expr) => {
        match $db {
            Db::Sqlite(pool) => {
                let $q = |sql: &'static str| sqlx::query::<sqlx::Sqlite>(sql);
                let run = $body;
                run(pool).await.map(|_| ())
            }
            Db::Postgres(pool) => {
                let $q = |sql: &'static str| sqlx::query::<sqlx::Postgres>(sql);
                let run = $body;
                run(pool).await.map(|_| ())
            }
        }
    };
}

/// A key's record, without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its id: the public part of the key, which lists and revocations
    /// name it by.
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// Its name, recorded as the actor in audit entries.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was issued (RFC 3339).
    pub created_at: String,
}

/// A new key, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key as the client sends it (`Authorization: Bearer ...`).
    pub key: String,
    /// Its record.
    pub record: KeyRecord,
}

/// What came of a revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The key is revoked; its record as it was.
    Revoked(KeyRecord),
    /// The tenant has no key with that id.
    Unknown,
    /// The key is the tenant's last admin key, and stays.
    LastAdmin,
}

/// The API keys of every tenant.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    db: Db,
}

/// A key's row: its id or hash, tenant, name, role, creation time.
type Row = (String, String, String, String, String);

fn record(id: String, tenant: String, name: String, role: &str, created_at: String) -> KeyRecord {
    KeyRecord {
        id,
        tenant,
        name,
        // An unknown role in the table grants the least.
        role: Role::parse(role).unwrap_or(Role::Viewer),
        created_at,
    }
}

fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn random_hex(bytes: usize) -> Result<String, sqlx::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|err| sqlx::Error::Protocol(format!("no randomness: {err}")))?;
    Ok(hex::encode(buf))
}

impl ApiKeys {
    /// The keys in `db`, creating their table if needed.
    pub async fn new(db: Db) -> Result<Self, sqlx::Error> {
        const TABLE: &str = "CREATE TABLE IF NOT EXISTS server_api_keys (
            key_id TEXT PRIMARY KEY,
            key_hash TEXT NOT NULL,
            tenant TEXT NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at TEXT NOT NULL)";
        on_db!(&db, |q| |pool| q(TABLE).execute(pool))?;
        Ok(Self { db })
    }

    /// Issues a key for `tenant` with `role`, named `name`.
    pub async fn issue(
        &self,
        tenant: &str,
        name: &str,
        role: Role,
    ) -> Result<IssuedKey, sqlx::Error> {
        // The id finds the row; the secret part never leaves the response.
        let id = random_hex(6)?;
        let key = format!("cm_{id}_{}", random_hex(24)?);
        let key_hash = hash(&key);
        let now = Utc::now().to_rfc3339();
        const INSERT: &str = "INSERT INTO server_api_keys (key_id, key_hash, tenant, name, role, created_at) VALUES ($1, $2, $3, $4, $5, $6)";
        on_db!(&self.db, |q| |pool| q(INSERT)
            .bind(&id)
            .bind(&key_hash)
            .bind(tenant)
            .bind(name)
            .bind(role.as_str())
            .bind(&now)
            .execute(pool))?;
        Ok(IssuedKey {
            key,
            record: KeyRecord {
                id,
                tenant: tenant.into(),
                name: name.into(),
                role,
                created_at: now,
            },
        })
    }

    /// The record of `key`, if it is one of ours.
    pub async fn verify(&self, key: &str) -> Result<Option<KeyRecord>, sqlx::Error> {
        let Some(id) = key
            .strip_prefix("cm_")
            .and_then(|rest| rest.split('_').next())
        else {
            return Ok(None);
        };
        const SELECT: &str = "SELECT key_hash, tenant, name, role, created_at FROM server_api_keys WHERE key_id = $1";
        let row: Option<Row> = match &self.db {
            Db::Sqlite(pool) => sqlx::query_as(SELECT).bind(id).fetch_optional(pool).await?,
            Db::Postgres(pool) => sqlx::query_as(SELECT).bind(id).fetch_optional(pool).await?,
        };
        let Some((stored, tenant, name, role, created_at)) = row else {
            return Ok(None);
        };
        let same = crate::auth::same_secret(hash(key).as_bytes(), stored.as_bytes());
        Ok(same.then(|| record(id.to_string(), tenant, name, &role, created_at)))
    }

    /// The keys of `tenant`, oldest first.
    pub async fn list(&self, tenant: &str) -> Result<Vec<KeyRecord>, sqlx::Error> {
        const SELECT: &str = "SELECT key_id, tenant, name, role, created_at FROM server_api_keys WHERE tenant = $1 ORDER BY created_at, key_id";
        let rows: Vec<Row> = match &self.db {
            Db::Sqlite(pool) => sqlx::query_as(SELECT).bind(tenant).fetch_all(pool).await?,
            Db::Postgres(pool) => sqlx::query_as(SELECT).bind(tenant).fetch_all(pool).await?,
        };
        Ok(rows
            .into_iter()
            .map(|(id, tenant, name, role, created_at)| record(id, tenant, name, &role, created_at))
            .collect())
    }

    /// Revokes key `id` of `tenant`: from now on it authenticates nothing.
    /// Another tenant's key is not found; a tenant's last admin key is
    /// kept, so that someone can still issue and revoke keys.
    pub async fn revoke(&self, tenant: &str, id: &str) -> Result<Revocation, sqlx::Error> {
        // One statement: the count of admins and the delete see the same
        // state (SQLite runs one writer at a time; Postgres first locks
        // the tenant's admin rows, so two admins revoking each other at
        // once cannot both succeed).
        const DELETE: &str = "DELETE FROM server_api_keys WHERE key_id = $1 AND tenant = $2 \
            AND (role <> 'admin' OR (SELECT COUNT(*) FROM server_api_keys WHERE tenant = $2 AND role = 'admin') > 1) \
            RETURNING key_id, tenant, name, role, created_at";
        const LOCK_ADMINS: &str =
            "SELECT key_id FROM server_api_keys WHERE tenant = $1 AND role = 'admin' FOR UPDATE";
        const EXISTS: &str = "SELECT key_id FROM server_api_keys WHERE key_id = $1 AND tenant = $2";
        let (deleted, exists): (Option<Row>, Option<(String,)>) = match &self.db {
            Db::Sqlite(pool) => {
                let deleted = sqlx::query_as(DELETE)
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(pool)
                    .await?;
                let exists = sqlx::query_as(EXISTS)
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(pool)
                    .await?;
                (deleted, exists)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(LOCK_ADMINS)
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await?;
                let deleted = sqlx::query_as(DELETE)
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
                let exists = sqlx::query_as(EXISTS)
                    .bind(id)
                    .bind(tenant)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                (deleted, exists)
            }
        };
        Ok(match (deleted, exists) {
            (Some((id, tenant, name, role, created_at)), _) => {
                Revocation::Revoked(record(id, tenant, name, &role, created_at))
            }
            (None, Some(_)) => Revocation::LastAdmin,
            (None, None) => Revocation::Unknown,
        })
    }
}
