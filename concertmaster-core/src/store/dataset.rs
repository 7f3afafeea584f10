//! `DatasetStore`: named collections of items that workflows fill (the
//! `collect` node) and hosts query.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::ids::{NodeId, RunId, TenantId};
use crate::item::Item;

/// One item of a dataset, with where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetRecord {
    /// The run that collected it.
    pub run_id: RunId,
    /// The node that collected it.
    pub node_id: NodeId,
    /// Its place among the items that node collected in that run.
    pub position: u32,
    /// The item.
    pub item: Item,
    /// When it was collected.
    pub collected_at: DateTime<Utc>,
}

/// Which records of a dataset to read: newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatasetFilter {
    /// Only what this run collected.
    pub run_id: Option<RunId>,
    /// Only records collected at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
}

impl DatasetFilter {
    /// Every record, up to the default limit.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only what run `run` collected.
    pub fn run(mut self, run: RunId) -> Self {
        self.run_id = Some(run);
        self
    }

    /// Only records collected at or after `at`.
    pub fn since(mut self, at: DateTime<Utc>) -> Self {
        self.since = Some(at);
        self
    }

    /// At most `limit` records.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The limit a store applies.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(100).min(1000)
    }
}

/// Named datasets per tenant.
#[async_trait]
pub trait DatasetStore: Send + Sync {
    /// Stores `items` as what node `node` of run `run` collected into
    /// dataset `name`, replacing what that node collected in that run
    /// before (a re-executed node does not collect twice), in one change.
    async fn put_dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        run: RunId,
        node: &NodeId,
        items: &[Item],
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Records of dataset `name` passing `filter`, newest first (and in
    /// collection order within one node's collection).
    async fn dataset(
        &self,
        tenant: &TenantId,
        name: &str,
        filter: &DatasetFilter,
    ) -> StoreResult<Vec<DatasetRecord>>;
}
