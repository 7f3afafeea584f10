//! ERP connectors of ConcertMaster: collected, reviewed data into SAP or
//! NetSuite without losing or duplicating a record.
//!
//! | feature    | connector |
//! |------------|-----------|
//! | `sap`      | [`SapConnector`]: SAP S/4HANA over OData V2 and V4: CSRF tokens, `$batch`, ETags, typed OData errors, basic auth or OAuth2 client credentials |
//! | `netsuite` | [`NetSuiteConnector`]: NetSuite SuiteTalk REST: OAuth 1.0a (HMAC-SHA256), upsert by external id, idempotent creates, SuiteQL, rate-limit back-off |
//!
//! A connection's config (URL, credentials) is kept by [`Connections`],
//! sealed with AES-256-GCM by a [`KeyRing`] of named, rotatable keys;
//! secrets are [`Secret`]s, which print as `***` in Debug output, logs and
//! errors. [`Connections::open`] gives the connector of an active
//! connection, behind the [`Connector`](concertmaster_core::connector::Connector)
//! trait of the core crate.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use concertmaster_core::{InMemoryStore, TenantId};
//! use concertmaster_erp::{Connections, KeyRing, NewConnection, ODataVersion, SapAuth, SapConfig, Secret};
//!
//! let connections = Connections::new(Arc::new(InMemoryStore::new()), KeyRing::new("k1", [7u8; 32])?);
//! let tenant = TenantId::new("acme");
//! let config = SapConfig {
//!     service_url: "https://s4.example.com/sap/opu/odata/sap/API_BUSINESS_PARTNER".into(),
//!     version: ODataVersion::V2,
//!     auth: SapAuth::Basic { username: "CM_USER".into(), password: Secret::new("s3cret".into()) },
//!     batch_size: 50,
//!     sap_client: Some("100".into()),
//!     timeout_seconds: 30,
//! };
//! connections.create(&tenant, Some("admin"), NewConnection::new("sap-prod", "sap", &config)?).await?;
//! // In a workflow step (or the editor's "test connection"):
//! let sap = connections.open(&tenant, "sap-prod").await?;
//! # drop(sap);
//! # Ok(()) }
//! ```

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod connections;
#[cfg(any(feature = "sap", feature = "netsuite"))]
mod http;
mod keyring;
#[cfg(feature = "netsuite")]
mod netsuite;
mod nodes;
#[cfg(feature = "sap")]
mod sap;
mod secret;

/// Entry points for the fuzz targets under `fuzz/`: the parsers of what an
/// ERP answers, reachable only in builds with `--cfg fuzzing` (`cargo fuzz`
/// sets it), never part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `body` as every kind of SAP answer (OData V2 and V4 bodies,
    /// `$batch` multipart answers, error objects, `Location` keys).
    #[cfg(feature = "sap")]
    pub fn sap_answer(content_type: &str, status: u16, body: &[u8]) {
        crate::sap::parse_answer(content_type, status, body);
    }

    /// Parses `body` as every kind of NetSuite answer (error bodies,
    /// throttling, SuiteQL pages).
    #[cfg(feature = "netsuite")]
    pub fn netsuite_answer(status: u16, body: &[u8]) {
        crate::netsuite::parse_answer(status, body);
    }
}

pub use connections::{ConnectionError, Connections, NewConnection, ResealReport, ResealSkip};
pub use keyring::{CryptoError, KeyRing, Sealed};
#[cfg(feature = "netsuite")]
pub use netsuite::{NetSuiteConfig, NetSuiteConnector, NetSuiteFactory};
pub use nodes::{OK_PORT, REFUSED_PORT};
#[cfg(feature = "sap")]
pub use sap::{ODataVersion, SapAuth, SapConfig, SapConnector, SapFactory};
pub use secret::Secret;
