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
    /// The tenant it acts for.
    pub tenant: String,
    /// Its name, recorded as the actor in audit entries.
    pub name: String,
    /// What it may do.
    pub role: Role,
}

/// A new key, shown once.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key as the client sends it (`Authorization: Bearer ...`).
    pub key: String,
    /// Its record.
    pub record: KeyRecord,
}

/// The API keys of every tenant.
#[derive(Debug, Clone)]
pub struct ApiKeys {
    db: Db,
}

fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_hex(bytes: usize) -> Result<String, sqlx::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)
        .map_err(|err| sqlx::Error::Protocol(format!("no randomness: {err}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
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
                tenant: tenant.into(),
                name: name.into(),
                role,
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
        const SELECT: &str =
            "SELECT key_hash, tenant, name, role FROM server_api_keys WHERE key_id = $1";
        let row: Option<(String, String, String, String)> = match &self.db {
            Db::Sqlite(pool) => sqlx::query_as(SELECT).bind(id).fetch_optional(pool).await?,
            Db::Postgres(pool) => sqlx::query_as(SELECT).bind(id).fetch_optional(pool).await?,
        };
        let Some((stored, tenant, name, role)) = row else {
            return Ok(None);
        };
        let same = crate::auth::same_secret(hash(key).as_bytes(), stored.as_bytes());
        Ok(same.then(|| KeyRecord {
            tenant,
            name,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
        }))
    }
}
