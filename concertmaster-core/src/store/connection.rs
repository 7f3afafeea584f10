//! `ConnectionStore`: ERP connections, their configs sealed (encrypted and
//! authenticated) by the host's key ring before they reach the store.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::ids::TenantId;

/// A connection as stored. The store never sees the config in the clear:
/// `sealed_config` is what the key ring `key_id` sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredConnection {
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// Its id, chosen by the tenant (`sap-prod`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Connector type (`sap`, `netsuite`, `http`).
    pub kind: String,
    /// The key that sealed the config.
    pub key_id: String,
    /// Nonce, ciphertext and tag.
    pub sealed_config: Vec<u8>,
    /// Keyed hash (HMAC-SHA256) of the config in the clear, to tell changes
    /// apart and to check the config after opening it.
    pub config_hash: String,
    /// An inactive connection refuses use.
    pub active: bool,
    /// When "test connection" last succeeded.
    pub last_tested_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredConnection")
            .field("tenant", &self.tenant)
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("key_id", &self.key_id)
            .field(
                "sealed_config",
                &format_args!("{} bytes", self.sealed_config.len()),
            )
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// ERP connections per tenant.
#[async_trait]
pub trait ConnectionStore: super::AuditStore {
    /// Stores `connection`, replacing the one with its id.
    async fn save_connection(&self, connection: &StoredConnection) -> StoreResult<()>;

    /// Replaces `previous` (a connection as read from the store) with
    /// `connection`, only while it is still stored exactly as `previous`;
    /// whether it was. A change made since the read (a key rotation, a new
    /// config, a deactivation) is never reverted: the caller reads again.
    async fn replace_connection(
        &self,
        connection: &StoredConnection,
        previous: &StoredConnection,
    ) -> StoreResult<bool>;

    /// Connection `id`.
    async fn connection(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<StoredConnection>>;

    /// The tenant's connections, ordered by id.
    async fn connections(&self, tenant: &TenantId) -> StoreResult<Vec<StoredConnection>>;

    /// Records a successful test of connection `id` at `at`.
    async fn mark_tested(&self, tenant: &TenantId, id: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Up to `limit` connections of any tenant sealed with key `key_id`:
    /// what a key rotation re-seals.
    async fn connections_sealed_with(
        &self,
        key_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<StoredConnection>>;
}
