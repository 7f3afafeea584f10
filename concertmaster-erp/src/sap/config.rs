//! A connection's config: OData version, authentication, batch and page
//! sizes; the factory that opens a connector from it.

use super::*;
use concertmaster_core::connector::{config_schema, ExportNode};
use schemars::JsonSchema;

/// Records per `$batch` unless the config says otherwise.
pub(super) const DEFAULT_BATCH_SIZE: usize = 50;
/// Largest `batchSize` accepted.
pub(super) const MAX_BATCH_SIZE: usize = 1000;
/// Records per page of a read unless the query says otherwise.
pub(super) const DEFAULT_PAGE_SIZE: u32 = 100;
/// A token is renewed this long before it expires (at most a quarter of
/// its lifetime), so it does not expire on the way.
pub(super) const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// Times a request answered "429 Too Many Requests" is sent again, after
/// the wait the gateway asks for, before the write fails as rate limited
/// (and the node's own retries take over). A throttled request was not
/// carried out, so sending it again is safe.
pub(super) const RATE_LIMIT_RETRIES: u32 = 4;
/// Longest wait for a rate limit; a longer `Retry-After` is left to the
/// node's retries.
pub(super) const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

/// The OData protocol version of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(title = "OData version")]
pub enum ODataVersion {
    /// OData V2 (`/sap/opu/odata/sap/...`): `d` envelopes, `MERGE`.
    V2,
    /// OData V4 (`/sap/opu/odata4/...`): `value`, `PATCH`.
    V4,
}

/// How the connector signs in.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SapAuth {
    /// HTTP basic auth with a communication user.
    #[serde(rename_all = "camelCase")]
    #[schemars(title = "Basic")]
    Basic {
        /// The user.
        #[schemars(length(min = 1))]
        username: String,
        /// Its password.
        password: Secret<String>,
    },
    /// OAuth2 client credentials (SAP BTP / XSUAA, S/4HANA Cloud).
    #[serde(rename_all = "camelCase")]
    #[schemars(title = "OAuth2 client credentials")]
    OAuth2ClientCredentials {
        /// The token endpoint (`https://.../oauth/token`).
        #[schemars(url)]
        token_url: String,
        /// The client id.
        #[schemars(length(min = 1))]
        client_id: String,
        /// The client secret.
        client_secret: Secret<String>,
        /// Scopes to ask for, space separated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
}

impl std::fmt::Debug for SapAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            Self::OAuth2ClientCredentials {
                token_url,
                client_id,
                ..
            } => f
                .debug_struct("OAuth2ClientCredentials")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// A SAP connection's config, as stored (sealed) in a connection.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "SAP S/4HANA (OData)")]
pub struct SapConfig {
    /// The service root, e.g.
    /// `https://my.s4.example/sap/opu/odata/sap/API_BUSINESS_PARTNER`.
    #[schemars(title = "Service root URL", url)]
    pub service_url: String,
    /// The OData version the service speaks.
    pub version: ODataVersion,
    /// How to sign in.
    pub auth: SapAuth,
    /// Records per `$batch` request (1 sends each create on its own).
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = MAX_BATCH_SIZE))]
    pub batch_size: usize,
    /// The SAP client (`sap-client` parameter), when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[0-9]{3}$"))]
    pub sap_client: Option<String>,
    /// Seconds a request may take.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: u64,
}

pub(super) fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

pub(super) fn default_timeout() -> u64 {
    60
}

/// Makes [`SapConnector`]s: connection kind `sap`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SapFactory;

impl ConnectorFactory for SapFactory {
    fn kind(&self) -> &str {
        "sap"
    }

    fn config_schema(&self) -> Value {
        config_schema::<SapConfig>()
    }

    fn export_node(&self) -> Option<ExportNode> {
        Some(
            ExportNode::new("sap_export", "SAP export")
                .icon("sap")
                .entity_field("entity", "OData entity set (A_BusinessPartner)")
                .examples(
                    "A_BusinessPartner",
                    "BusinessPartner",
                    "OrganizationBPName1",
                ),
        )
    }

    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config: SapConfig = http::parse_config(connection, config)?;
        Ok(Arc::new(SapConnector::new(connection, config)?))
    }
}
