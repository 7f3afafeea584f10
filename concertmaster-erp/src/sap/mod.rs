//! SAP S/4HANA over OData V2 and V4.
//!
//! What the connector does for its caller: basic auth or an OAuth2 client
//! credentials token (cached until shortly before it expires, fetched
//! again once on a 401); the CSRF token S/4HANA wants on every modifying
//! call, fetched with the session cookie and fetched again once when the
//! server answers 403 "CSRF token validation failed"; creates in `$batch`
//! requests of `batchSize`, one changeset per record; updates with
//! `If-Match`; paging by the server's next links and by `$skip`; OData
//! error objects as typed errors.
//!
//! Records a `$batch` did not process are sent again; `If-Match` updates
//! answer 412 as `ConnectorError::Conflict`; upsert is read, then update or
//! create; next links are followed only on the configured origin; OData
//! errors become `ErpMessage { code, message, target, details }`; a 429 is
//! waited out as `Retry-After` asks (a throttled request was not carried
//! out), other failures are left to the node's retries, which write by
//! key.

mod batch;
mod config;
mod odata;
mod read;
mod session;
mod write;

use config::*;
pub use config::{ODataVersion, SapAuth, SapConfig, SapFactory};
use session::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use concertmaster_core::connector::{
    ConnectionCheck, Connector, ConnectorError, ConnectorFactory, ErpMessage, Page, ReadQuery,
    Record, RecordFailure, RecordOutcome, WriteMode, Written,
};
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE, COOKIE, ETAG, IF_MATCH, LOCATION,
};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::http;
use crate::secret::Secret;

/// A connector to one SAP OData service. Open it through
/// [`Connections`](crate::Connections) or [`SapConnector::new`].
pub struct SapConnector {
    connection: String,
    config: SapConfig,
    /// The service root, with a trailing slash so entity sets join onto it.
    root: Url,
    token_url: Option<Url>,
    client: reqwest::Client,
    csrf: Mutex<Option<CsrfSession>>,
    token: Mutex<Option<AccessToken>>,
}

impl std::fmt::Debug for SapConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SapConnector")
            .field("connection", &self.connection)
            .field("root", &self.root.as_str())
            .field("auth", &self.config.auth)
            .finish_non_exhaustive()
    }
}

/// What a request carries, kept so it can be sent again after a fresh
/// token or CSRF token.
struct Call {
    method: Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl SapConnector {
    /// A connector for `connection` with `config`; checks the config, calls
    /// nothing (sign-in happens on first use).
    pub fn new(connection: &str, config: SapConfig) -> Result<Self, ConnectorError> {
        let invalid = |message: String| ConnectorError::Config {
            connection: connection.into(),
            message,
        };
        let mut root = http::base_url(connection, "serviceUrl", &config.service_url)?;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        if let Some(client) = &config.sap_client {
            if client.len() != 3 || !client.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid(format!(
                    "at sapClient: {client:?} is not a three-digit SAP client"
                )));
            }
        }
        if !(1..=MAX_BATCH_SIZE).contains(&config.batch_size) {
            return Err(invalid(format!(
                "at batchSize: {} is outside 1..={MAX_BATCH_SIZE}",
                config.batch_size
            )));
        }
        if !(1..=600).contains(&config.timeout_seconds) {
            return Err(invalid(format!(
                "at timeoutSeconds: {} is outside 1..=600",
                config.timeout_seconds
            )));
        }
        let token_url = match &config.auth {
            SapAuth::Basic { username, .. } if username.is_empty() => {
                return Err(invalid("at auth.username: it is empty".into()))
            }
            SapAuth::Basic { .. } => None,
            SapAuth::OAuth2ClientCredentials { token_url, .. } => {
                Some(http::base_url(connection, "auth.tokenUrl", token_url)?)
            }
        };
        let client = http::client(connection, Duration::from_secs(config.timeout_seconds))?;
        Ok(Self {
            connection: connection.into(),
            config,
            root,
            token_url,
            client,
            csrf: Mutex::new(None),
            token: Mutex::new(None),
        })
    }

    fn err_erp(&self, error: ErpMessage) -> ConnectorError {
        match error.status {
            Some(401) => ConnectorError::Unauthorized {
                connection: self.connection.clone(),
                error: Box::new(error),
            },
            Some(429) => ConnectorError::RateLimited {
                connection: self.connection.clone(),
                retry_after: None,
            },
            _ => ConnectorError::Erp {
                connection: self.connection.clone(),
                error: Box::new(error),
            },
        }
    }

    fn protocol(&self, url: &Url, message: impl Into<String>) -> ConnectorError {
        ConnectorError::Protocol {
            connection: self.connection.clone(),
            url: http::display_url(url),
            message: message.into(),
        }
    }

    fn entity_url(&self, entity: &str, key: Option<&str>) -> Result<Url, ConnectorError> {
        if !odata::is_identifier(entity) {
            return Err(ConnectorError::Config {
                connection: self.connection.clone(),
                message: format!("{entity:?} is not an OData entity set name"),
            });
        }
        let segment = match key {
            Some(key) => format!("{entity}{}", odata::key_segment(key)),
            None => entity.to_string(),
        };
        self.root
            .join(&segment)
            .map_err(|err| self.protocol(&self.root, format!("cannot address {segment}: {err}")))
    }

    fn with_client_param(&self, mut url: Url) -> Url {
        if let Some(client) = &self.config.sap_client {
            if !url.query_pairs().any(|(k, _)| k == "sap-client") {
                url.query_pairs_mut().append_pair("sap-client", client);
            }
        }
        url
    }

    fn json_body(&self, url: &Url, body: &[u8]) -> Result<Value, ConnectorError> {
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(body).map_err(|err| {
            self.protocol(
                url,
                format!("the body is not JSON ({err}); is the service URL an OData service?"),
            )
        })
    }
}

/// Parses `body` as each kind of answer the connector reads from SAP;
/// `crate::fuzzing` reaches it.
#[cfg(fuzzing)]
pub(crate) fn parse_answer(content_type: &str, status: u16, body: &[u8]) {
    let _ = odata::error_message(status, body);
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let _ = batch::response(content_type, text);
    let _ = odata::key_of_location(text);
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let _ = odata::etag_of(&value);
        for version in [ODataVersion::V2, ODataVersion::V4] {
            let _ = odata::collection(version, value.clone());
            let _ = odata::entity(version, value.clone());
        }
    }
}

#[async_trait]
impl Connector for SapConnector {
    async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError> {
        let span = tracing::info_span!("sap.validate_connection", connection = %self.connection);
        async {
            let session = self.fetch_csrf().await?;
            *self.csrf.lock().await = Some(session);
            let identity = match &self.config.auth {
                SapAuth::Basic { username, .. } => username.clone(),
                SapAuth::OAuth2ClientCredentials { client_id, .. } => client_id.clone(),
            };
            Ok(ConnectionCheck {
                system: format!(
                    "SAP OData {} service at {}",
                    match self.config.version {
                        ODataVersion::V2 => "V2",
                        ODataVersion::V4 => "V4",
                    },
                    http::display_url(&self.root)
                ),
                identity: Some(identity),
            })
        }
        .instrument(span)
        .await
    }

    async fn write(
        &self,
        entity: &str,
        mode: WriteMode,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let span = tracing::info_span!("sap.write", connection = %self.connection, entity, %mode, records = records.len());
        async {
            self.entity_url(entity, None)?;
            match mode {
                WriteMode::Create => self.create_all(entity, records).await,
                WriteMode::Update => {
                    let mut outcomes = Vec::with_capacity(records.len());
                    for record in records {
                        let etag = record.etag.clone().unwrap_or_else(|| "*".into());
                        outcomes.push(self.update_one(entity, record, &etag).await?);
                    }
                    Ok(outcomes)
                }
                WriteMode::Upsert => {
                    let mut outcomes = Vec::with_capacity(records.len());
                    for record in records {
                        outcomes.push(self.upsert_one(entity, record).await?);
                    }
                    Ok(outcomes)
                }
            }
        }
        .instrument(span)
        .await
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.config.timeout_seconds))
    }

    async fn find(
        &self,
        entity: &str,
        key: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<Written>, ConnectorError> {
        self.find_record(entity, key, fields).await
    }

    async fn read(
        &self,
        entity: &str,
        query: &ReadQuery,
        next: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        self.read_page(entity, query, next).await
    }
}
