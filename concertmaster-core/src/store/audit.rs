//! Audit log entries and their filter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::TenantId;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditAction {
    /// A record was created (a workflow version published, ...).
    Create,
    /// A record was changed.
    Update,
    /// A record was removed.
    Delete,
    /// A run was started.
    Execute,
    /// A waiting run was resumed by an event.
    Resume,
    /// A run was cancelled.
    Cancel,
    /// A form response was approved or rejected.
    Review,
    /// Personal data was erased on a data subject's request or by retention.
    Erase,
    /// Records holding personal data were read (GDPR Art. 30).
    Access,
}

/// One line of the audit log. Never holds secrets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The tenant acted on.
    pub tenant: TenantId,
    /// When.
    pub at: DateTime<Utc>,
    /// Who, when the caller said (a user id, an API key's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What.
    pub action: AuditAction,
    /// The kind of record (`workflow`, `run`, ...).
    pub entity_type: String,
    /// The record's id.
    pub entity_id: String,
    /// Before/after, reason, and other context.
    #[serde(default)]
    pub details: Value,
}

/// Which audit entries to read. Newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only entries about this kind of record.
    pub entity_type: Option<String>,
    /// Only entries about this record.
    pub entity_id: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (100 when `None`).
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Entries about one record.
    pub fn entity(entity_type: impl Into<String>, entity_id: impl Into<String>) -> Self {
        Self {
            entity_type: Some(entity_type.into()),
            entity_id: Some(entity_id.into()),
            ..Self::default()
        }
    }

    /// Whether `entry` passes the filter (the limit aside).
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.entity_type
            .as_ref()
            .is_none_or(|t| *t == entry.entity_type)
            && self
                .entity_id
                .as_ref()
                .is_none_or(|i| *i == entry.entity_id)
            && self.since.is_none_or(|since| entry.at >= since)
    }

    /// The cap in force.
    pub fn effective_limit(&self) -> usize {
        self.limit.unwrap_or(100)
    }
}
