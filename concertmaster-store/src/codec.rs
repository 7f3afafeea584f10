//! Conversions between core records and column values, shared by the backends.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The snake_case name a status enum serializes to.
pub(crate) fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        // Status enums serialize to strings; anything else is a bug caught by tests.
        other => format!("{other:?}"),
    }
}

/// The enum value a stored name stands for.
pub(crate) fn parse_name<T: DeserializeOwned>(
    column: &str,
    name: String,
) -> Result<T, sqlx::Error> {
    serde_json::from_value(serde_json::Value::String(name)).map_err(|err| {
        sqlx::Error::ColumnDecode {
            index: column.to_string(),
            source: Box::new(err),
        }
    })
}

/// A stored integer that must fit a `u32` (versions, attempts).
pub(crate) fn to_u32(column: &str, value: i32) -> Result<u32, sqlx::Error> {
    u32::try_from(value).map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    })
}

/// A `u32` as the signed integer columns hold; values past `i32::MAX` are
/// refused rather than wrapped.
pub(crate) fn to_i32(value: u32) -> Result<i32, concertmaster_core::store::StoreError> {
    i32::try_from(value).map_err(|_| concertmaster_core::store::StoreError::Conflict {
        entity: "value",
        id: value.to_string(),
        message: "exceeds the largest number the store holds (2147483647)".into(),
    })
}

/// A limit as SQL takes it.
pub(crate) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concertmaster_core::{run::NodeStatus, store::AuditAction, RunStatus};

    #[test]
    fn stored_names_are_the_ones_the_sql_filters_on() {
        assert_eq!(name_of(&RunStatus::Pending), "pending");
        assert_eq!(name_of(&NodeStatus::Waiting), "waiting");
        assert_eq!(name_of(&AuditAction::Execute), "execute");
        assert_eq!(
            parse_name::<RunStatus>("status", "cancelled".into()).ok(),
            Some(RunStatus::Cancelled)
        );
        assert!(parse_name::<RunStatus>("status", "paused".into()).is_err());
    }
}
