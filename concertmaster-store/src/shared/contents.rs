//! `ContentStore` on the shared SQL code.

use async_trait::async_trait;
use concertmaster_core::{
    content::ContentId,
    store::{ContentStore, StoreError, StoreResult},
    TenantId,
};

use super::This;
use crate::error::store_error;
use crate::sql_store::sql;

#[async_trait]
impl ContentStore for This {
    async fn put_chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
        bytes: &[u8],
    ) -> StoreResult<()> {
        let entity = || format!("{id}/{seq}");
        let seq = i32::try_from(seq).map_err(|_| StoreError::Conflict {
            entity: "content chunk",
            id: entity(),
            message: "content has more chunks than the store holds".into(),
        })?;
        sqlx::query(sql!("content/put"))
            .bind(id.as_uuid())
            .bind(seq)
            .bind(tenant.as_str())
            .bind(bytes)
            .execute(&self.pool)
            .await
            .map_err(|err| store_error(err, "content chunk", entity()))?;
        Ok(())
    }

    async fn chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>> {
        let Ok(seq) = i32::try_from(seq) else {
            return Ok(None);
        };
        sqlx::query_scalar::<_, Vec<u8>>(sql!("content/get"))
            .bind(id.as_uuid())
            .bind(seq)
            .bind(tenant.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| store_error(err, "content chunk", format!("{id}/{seq}")))
    }

    async fn delete_content(&self, tenant: &TenantId, id: ContentId) -> StoreResult<u64> {
        sqlx::query(sql!("content/delete"))
            .bind(id.as_uuid())
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(|err| store_error(err, "content", id))
    }
}
