//! `DatasetStore` on the shared SQL code.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    store::{DatasetFilter, DatasetRecord, DatasetStore, StoreResult},
    Item, NodeId, RunId, TenantId,
};
use sqlx::types::Json;
use sqlx::Row;

use super::{read_ts, ts, ts_opt, Db, This, BEGIN};
use crate::codec::{limit, to_u32};
use crate::error::store_error;
use crate::sql_store::sql;

fn record_from_row(row: &<Db as sqlx::Database>::Row) -> Result<DatasetRecord, sqlx::Error> {
    Ok(DatasetRecord {
        run_id: RunId::from_uuid(row.try_get("run_id")?),
        node_id: NodeId::new(row.try_get::<String, _>("node_id")?),
        position: to_u32("position", row.try_get("position")?)?,
        item: row.try_get::<Json<Item>, _>("item")?.0,
        collected_at: read_ts(row, "collected_at")?,
    })
}

#[async_trait]
impl DatasetStore for This {
    async fn put_dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        run: RunId,
        node: &NodeId,
        items: &[Item],
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let fail = |err| store_error(err, "dataset", name);
        let mut tx = self.pool.begin_with(BEGIN).await.map_err(fail)?;
        sqlx::query(sql!("dataset/clear"))
            .bind(tenant.as_str())
            .bind(name)
            .bind(run.as_uuid())
            .bind(node.as_str())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        for (position, item) in items.iter().enumerate() {
            let position = i32::try_from(position).map_err(|_| {
                concertmaster_core::store::StoreError::Conflict {
                    entity: "dataset",
                    id: name.to_string(),
                    message: "more items than one collection holds".into(),
                }
            })?;
            sqlx::query(sql!("dataset/insert"))
                .bind(tenant.as_str())
                .bind(name)
                .bind(run.as_uuid())
                .bind(node.as_str())
                .bind(position)
                .bind(Json(item))
                .bind(ts(at))
                .execute(&mut *tx)
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }

    async fn dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>> {
        sqlx::query(sql!("dataset/list"))
            .bind(tenant.as_str())
            .bind(name)
            .bind(filter.run_id.map(|r| r.as_uuid()))
            .bind(ts_opt(filter.since))
            .bind(limit(filter.effective_limit()))
            .fetch_all(&self.pool)
            .await
            .and_then(|rows| rows.iter().map(record_from_row).collect())
            .map_err(|err| store_error(err, "dataset", name))
    }
}
