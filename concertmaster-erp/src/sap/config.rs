//! A connection's config: OData version, authentication, batch and page
//! sizes; the factory that opens a connector from it.

use super::*;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ODataVersion {
    /// OData V2 (`/sap/opu/odata/sap/...`): `d` envelopes, `MERGE`.
    V2,
    /// OData V4 (`/sap/opu/odata4/...`): `value`, `PATCH`.
    V4,
}

/// How the connector signs in.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SapAuth {
    /// HTTP basic auth with a communication user.
    #[serde(rename_all = "camelCase")]
    Basic {
        /// The user.
        username: String,
        /// Its password.
        password: Secret<String>,
    },
    /// OAuth2 client credentials (SAP BTP / XSUAA, S/4HANA Cloud).
    #[serde(rename_all = "camelCase")]
    OAuth2ClientCredentials {
        /// The token endpoint (`https://.../oauth/token`).
        token_url: String,
        /// The client id.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SapConfig {
    /// The service root, e.g.
    /// `https://my.s4.example/sap/opu/odata/sap/API_BUSINESS_PARTNER`.
    pub service_url: String,
    /// The OData version the service speaks.
    pub version: ODataVersion,
    /// How to sign in.
    pub auth: SapAuth,
    /// Records per `$batch` request (1 sends each create on its own).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The SAP client (`sap-client` parameter), when not the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sap_client: Option<String>,
    /// Seconds a request may take.
    #[serde(default = "default_timeout")]
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
        json!({
            "type": "object",
            "title": "SAP S/4HANA (OData)",
            "required": ["serviceUrl", "version", "auth"],
            "additionalProperties": false,
            "properties": {
                "serviceUrl": { "type": "string", "format": "uri", "title": "Service root URL" },
                "version": { "type": "string", "enum": ["v2", "v4"], "title": "OData version" },
                "auth": {
                    "oneOf": [
                        {
                            "title": "Basic",
                            "type": "object",
                            "required": ["type", "username", "password"],
                            "additionalProperties": false,
                            "properties": {
                                "type": { "const": "basic" },
                                "username": { "type": "string", "minLength": 1 },
                                "password": { "type": "string", "writeOnly": true }
                            }
                        },
                        {
                            "title": "OAuth2 client credentials",
                            "type": "object",
                            "required": ["type", "tokenUrl", "clientId", "clientSecret"],
                            "additionalProperties": false,
                            "properties": {
                                "type": { "const": "oAuth2ClientCredentials" },
                                "tokenUrl": { "type": "string", "format": "uri" },
                                "clientId": { "type": "string", "minLength": 1 },
                                "clientSecret": { "type": "string", "writeOnly": true },
                                "scope": { "type": "string" }
                            }
                        }
                    ]
                },
                "batchSize": { "type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE, "default": DEFAULT_BATCH_SIZE },
                "sapClient": { "type": "string", "pattern": "^[0-9]{3}$" },
                "timeoutSeconds": { "type": "integer", "minimum": 1, "maximum": 600, "default": 60 }
            }
        })
    }

    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config: SapConfig = http::parse_config(connection, config)?;
        Ok(Arc::new(SapConnector::new(connection, config)?))
    }
}
