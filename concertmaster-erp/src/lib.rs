//! ERP connectors of ConcertMaster.
//!
//! This crate will hold the `Connector` implementations that take collected,
//! reviewed data into an ERP without losing or duplicating a record:
//!
//! | feature    | connector |
//! |------------|-----------|
//! | `sap`      | SAP S/4HANA over OData V2 and V4: CSRF tokens, `$batch`, ETags, typed OData errors |
//! | `netsuite` | NetSuite SuiteTalk REST: OAuth 1.0a (HMAC-SHA256), upsert by external id, SuiteQL |
//!
//! Connection secrets stay encrypted at rest and never reach Debug output,
//! logs or errors.
//!
//! What is here so far: [`Secret`], a value that never prints, and
//! [`KeyRing`], which seals connection configs with AES-256-GCM under named,
//! rotatable keys, bound to their record.

mod keyring;
mod secret;

pub use keyring::{config_hash, CryptoError, KeyRing, Sealed};
pub use secret::Secret;
