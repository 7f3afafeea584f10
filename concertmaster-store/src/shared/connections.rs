//! `ConnectionStore` on the shared SQL code.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    store::{ConnectionStore, StoreError, StoreResult, StoredConnection},
    TenantId,
};
use sqlx::Row;

use super::{read_ts, read_ts_opt, ts, ts_opt, Db, This};
use crate::codec::limit;
use crate::error::store_error;
use crate::sql_store::sql;

/// Binds what a write of a connection may change, in the order
/// of the upsert's and the replacement's columns: name, kind,
/// sealed config, key id, config hash, active, last tested.
fn bind_state<'q>(
    query: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments>,
    c: &'q StoredConnection,
) -> sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments> {
    query
        .bind(c.name.as_str())
        .bind(c.kind.as_str())
        .bind(c.sealed_config.as_slice())
        .bind(c.key_id.as_str())
        .bind(c.config_hash.as_str())
        .bind(c.active)
        .bind(ts_opt(c.last_tested_at))
}

fn connection_from_row(row: &<Db as sqlx::Database>::Row) -> Result<StoredConnection, sqlx::Error> {
    Ok(StoredConnection {
        tenant: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        key_id: row.try_get("key_id")?,
        sealed_config: row.try_get("config_encrypted")?,
        config_hash: row.try_get("config_hash")?,
        active: row.try_get("is_active")?,
        last_tested_at: read_ts_opt(row, "last_tested_at")?,
        created_at: read_ts(row, "created_at")?,
        updated_at: read_ts(row, "updated_at")?,
    })
}

#[async_trait]
impl ConnectionStore for This {
    async fn save_connection(&self, c: &StoredConnection) -> StoreResult<()> {
        let query = sqlx::query(sql!("connection/upsert"))
            .bind(c.tenant.as_str())
            .bind(c.id.as_str());
        bind_state(query, c)
            .bind(ts(c.created_at))
            .bind(ts(c.updated_at))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|err| store_error(err, "connection", &c.id))
    }

    async fn replace_connection(
        &self,
        c: &StoredConnection,
        p: &StoredConnection,
    ) -> StoreResult<bool> {
        if (&c.tenant, &c.id, c.created_at) != (&p.tenant, &p.id, p.created_at) {
            return Ok(false);
        }
        let query = sqlx::query(sql!("connection/replace"))
            .bind(c.tenant.as_str())
            .bind(c.id.as_str());
        let query = bind_state(query, c)
            .bind(ts(c.updated_at))
            .bind(ts(p.created_at));
        let done = bind_state(query, p)
            .bind(ts(p.updated_at))
            .execute(&self.pool)
            .await
            .map_err(|err| store_error(err, "connection", &c.id))?;
        Ok(done.rows_affected() == 1)
    }

    async fn connection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<StoredConnection>> {
        sqlx::query(sql!("connection/get"))
            .bind(tenant.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .and_then(|row| row.map(|row| connection_from_row(&row)).transpose())
            .map_err(|err| store_error(err, "connection", id))
    }

    async fn connections(&self, tenant: &TenantId) -> StoreResult<Vec<StoredConnection>> {
        sqlx::query(sql!("connection/list"))
            .bind(tenant.as_str())
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(connection_from_row).collect())
            .map_err(|err| store_error(err, "connections of tenant", tenant))
    }

    async fn mark_tested(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let done = sqlx::query(sql!("connection/tested"))
            .bind(tenant.as_str())
            .bind(id)
            .bind(ts(at))
            .execute(&self.pool)
            .await
            .map_err(|err| store_error(err, "connection", id))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound {
                entity: "connection",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    async fn connections_sealed_with(
        &self,
        key_id: &str,
        max: usize,
    ) -> StoreResult<Vec<StoredConnection>> {
        sqlx::query(sql!("connection/sealed_with"))
            .bind(key_id)
            .bind(limit(max))
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(connection_from_row).collect())
            .map_err(|err| store_error(err, "connections sealed with key", key_id))
    }
}
