//! Errors of connecting, and the translation of sqlx errors into store errors.

use concertmaster_core::store::StoreError;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database could not be reached or opened.
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The database, without its password.
        url: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed; the database keeps the migrations before it.
    #[error("migration {version} ({description}) failed: {source}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// What it does.
        description: &'static str,
        /// What the database said.
        #[source]
        source: sqlx::Error,
    },
    /// The database holds migrations this build does not know: it was
    /// written by a newer ConcertMaster.
    #[error("the database is at schema version {found}, newer than this build's {known}; upgrade ConcertMaster")]
    SchemaTooNew {
        /// The newest version applied to the database.
        found: i64,
        /// The newest version this build has.
        known: i64,
    },
}

/// What a driver error means for the caller, as a store error about `entity` `id`.
pub(crate) fn store_error(err: sqlx::Error, entity: &'static str, id: impl ToString) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            entity,
            id: id.to_string(),
            message: "it exists already".into(),
        },
        // Integrity (23...) and schema (42...) errors will not pass on retry.
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("23")) => {
            StoreError::Conflict {
                entity,
                id: id.to_string(),
                message: db.message().to_string(),
            }
        }
        sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("42")) => {
            StoreError::Corrupt {
                entity,
                id: id.to_string(),
                message: format!(
                    "the database schema does not match this build: {}",
                    db.message()
                ),
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt {
            entity,
            id: id.to_string(),
            message: err.to_string(),
        },
        _ => StoreError::Unavailable {
            message: format!("{entity} {}: {err}", id.to_string()),
        },
    }
}
