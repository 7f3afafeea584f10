//! `ContentStore`: large values kept apart from items, in chunks.

use async_trait::async_trait;

use super::StoreResult;
use crate::ids::{ContentId, TenantId};

/// Large values (files, documents) items refer to by a
/// [`ContentRef`](crate::content::ContentRef) instead of holding them, stored as
/// numbered chunks so that they are written and read a chunk at a time.
/// [`Contents`](crate::content::Contents) is how nodes and hosts use it.
#[async_trait]
pub trait ContentStore: Send + Sync {
    /// Stores chunk `seq` of content `id` of `tenant`. A chunk stored
    /// already is a [`StoreError::Conflict`](super::StoreError::Conflict):
    /// content, once written, does not change.
    async fn put_chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
        bytes: &[u8],
    ) -> StoreResult<()>;

    /// Chunk `seq` of content `id` of `tenant`; `None` past its last chunk,
    /// and for content of another tenant.
    async fn chunk(
        &self,
        tenant: &TenantId,
        id: ContentId,
        seq: u32,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes every chunk of content `id` of `tenant`; returns how many.
    async fn delete_content(&self, tenant: &TenantId, id: ContentId) -> StoreResult<u64>;
}
