//! NetSuite over SuiteTalk REST.
//!
//! Token-based authentication (OAuth 1.0a, HMAC-SHA256, realm = account
//! id) signs every request afresh. Creates go to `record/v1/{type}` with
//! an `X-NetSuite-Idempotency-Key` derived from the record's idempotency
//! key, so a create sent again after a lost answer is not made twice;
//! upserts `PUT` to `record/v1/{type}/eid:{externalId}`; reads are SuiteQL
//! with `limit`/`offset` paging. "Too many requests" and the concurrency
//! limit are waited out, honouring `Retry-After`, before a record is given
//! up as rate limited.

mod answers;
mod oauth1;

use answers::*;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use concertmaster_core::connector::{
    ConnectionCheck, Connector, ConnectorError, ConnectorFactory, ErpMessage, Page, ReadQuery,
    Record, RecordFailure, RecordOutcome, WriteMode, Written,
};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::http;
use crate::secret::Secret;

/// SuiteQL rows per page unless the query says otherwise; NetSuite's most.
const DEFAULT_PAGE_SIZE: u32 = 100;
const MAX_PAGE_SIZE: u32 = 1000;
/// The longest a back-off waits, whatever `Retry-After` says.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A NetSuite connection's config, as stored (sealed) in a connection.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "NetSuite (SuiteTalk REST)")]
pub struct NetSuiteConfig {
    /// The account id (`1234567`, `1234567_SB1` for a sandbox): the OAuth
    /// realm, and the host unless `baseUrl` is given.
    #[schemars(title = "Account id", regex(pattern = "^[A-Za-z0-9_-]+$"))]
    pub account_id: String,
    /// The integration record's consumer key.
    #[schemars(length(min = 1))]
    pub consumer_key: String,
    /// The integration record's consumer secret.
    pub consumer_secret: Secret<String>,
    /// The access token's id.
    #[schemars(length(min = 1))]
    pub token_id: String,
    /// The access token's secret.
    pub token_secret: Secret<String>,
    /// The REST root, when not
    /// `https://{account}.suitetalk.api.netsuite.com/services/rest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(url)]
    pub base_url: Option<String>,
    /// How often a rate-limited request is tried again before the record
    /// is reported as rate limited.
    #[serde(default = "default_retries")]
    #[schemars(range(max = 20))]
    pub max_retries: u32,
    /// Seconds a request may take.
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 600))]
    pub timeout_seconds: u64,
}

fn default_retries() -> u32 {
    5
}

fn default_timeout() -> u64 {
    60
}

impl std::fmt::Debug for NetSuiteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetSuiteConfig")
            .field("account_id", &self.account_id)
            .field("consumer_key", &self.consumer_key)
            .field("token_id", &self.token_id)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Makes [`NetSuiteConnector`]s: connection kind `netsuite`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetSuiteFactory;

impl ConnectorFactory for NetSuiteFactory {
    fn kind(&self) -> &str {
        "netsuite"
    }

    fn config_schema(&self) -> Value {
        concertmaster_core::connector::config_schema::<NetSuiteConfig>()
    }

    fn export_node(&self) -> Option<concertmaster_core::connector::ExportNode> {
        Some(
            concertmaster_core::connector::ExportNode::new("netsuite_sync", "NetSuite sync")
                .icon("netsuite")
                .entity_field(
                    "recordType",
                    "Record type (vendor, customer, customrecord_...)",
                )
                .examples("vendor", "externalId", "companyName"),
        )
    }

    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError> {
        let config: NetSuiteConfig = http::parse_config(connection, config)?;
        Ok(Arc::new(NetSuiteConnector::new(connection, config)?))
    }
}

/// A connector to one NetSuite account. Open it through
/// [`Connections`](crate::Connections) or [`NetSuiteConnector::new`].
pub struct NetSuiteConnector {
    connection: String,
    config: NetSuiteConfig,
    /// The REST root with a trailing slash.
    root: Url,
    client: reqwest::Client,
}

impl std::fmt::Debug for NetSuiteConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetSuiteConnector")
            .field("connection", &self.connection)
            .field("root", &self.root.as_str())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What came back for one request, after back-off.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl NetSuiteConnector {
    /// A connector for `connection` with `config`; checks the config,
    /// calls nothing.
    pub fn new(connection: &str, config: NetSuiteConfig) -> Result<Self, ConnectorError> {
        let invalid = |message: String| ConnectorError::Config {
            connection: connection.into(),
            message,
        };
        let account = &config.account_id;
        if account.is_empty()
            || !account
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(invalid(format!(
                "at accountId: {account:?} is not a NetSuite account id (letters, digits, '_')"
            )));
        }
        for (field, value) in [
            ("consumerKey", &config.consumer_key),
            ("tokenId", &config.token_id),
        ] {
            if value.is_empty() {
                return Err(invalid(format!("at {field}: it is empty")));
            }
        }
        if config.max_retries > 20 {
            return Err(invalid(format!(
                "at maxRetries: {} is more than 20",
                config.max_retries
            )));
        }
        if !(1..=600).contains(&config.timeout_seconds) {
            return Err(invalid(format!(
                "at timeoutSeconds: {} is outside 1..=600",
                config.timeout_seconds
            )));
        }
        let root = match &config.base_url {
            Some(url) => http::base_url(connection, "baseUrl", url)?,
            None => {
                let host = account.to_ascii_lowercase().replace('_', "-");
                http::base_url(
                    connection,
                    "accountId",
                    &format!("https://{host}.suitetalk.api.netsuite.com/services/rest"),
                )?
            }
        };
        let mut root = root;
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let client = http::client(connection, Duration::from_secs(config.timeout_seconds))?;
        Ok(Self {
            connection: connection.into(),
            config,
            root,
            client,
        })
    }

    fn realm(&self) -> String {
        self.config
            .account_id
            .to_ascii_uppercase()
            .replace('-', "_")
    }

    fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        self.root.join(path).map_err(|err| ConnectorError::Config {
            connection: self.connection.clone(),
            message: format!("cannot address {path}: {err}"),
        })
    }

    fn record_url(&self, record_type: &str, id: Option<&str>) -> Result<Url, ConnectorError> {
        if !is_record_type(record_type) {
            return Err(ConnectorError::Config {
                connection: self.connection.clone(),
                message: format!("{record_type:?} is not a NetSuite record type"),
            });
        }
        match id {
            None => self.url(&format!("record/v1/{record_type}")),
            Some(id) => self.url(&format!("record/v1/{record_type}/{}", encode_segment(id))),
        }
    }

    /// Signs and sends a request, waiting out 429s and the concurrency
    /// limit (`Retry-After`, else doubling from half a second) up to
    /// `maxRetries` times.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, ConnectorError> {
        let mut attempt = 0u32;
        loop {
            let nonce = oauth1::nonce().map_err(|err| ConnectorError::Config {
                connection: self.connection.clone(),
                message: format!("no randomness for an OAuth nonce: {err}"),
            })?;
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
                .to_string();
            let realm = self.realm();
            let credentials = oauth1::Credentials {
                realm: &realm,
                consumer_key: &self.config.consumer_key,
                consumer_secret: self.config.consumer_secret.expose(),
                token_id: &self.config.token_id,
                token_secret: self.config.token_secret.expose(),
            };
            let authorization = Secret::new(oauth1::authorization(
                method.as_str(),
                url,
                &credentials,
                &nonce,
                &timestamp,
            ));
            let mut value = HeaderValue::from_str(authorization.expose()).map_err(|_| {
                ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: "a credential holds characters HTTP headers cannot carry".into(),
                }
            })?;
            value.set_sensitive(true);
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .header(AUTHORIZATION, value)
                .header(ACCEPT, "application/json");
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(body) = body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
            let response = request
                .send()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?;
            let status = response.status();
            let response_headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?
                .to_vec();
            if is_throttled(status, &body) {
                let asked = http::retry_after(&response_headers);
                if attempt >= self.config.max_retries {
                    return Err(ConnectorError::RateLimited {
                        connection: self.connection.clone(),
                        retry_after: asked,
                    });
                }
                let wait = asked
                    .unwrap_or_else(|| Duration::from_millis(500) * 2u32.saturating_pow(attempt))
                    .min(MAX_BACKOFF);
                tracing::info!(
                    connection = %self.connection,
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "NetSuite is rate limiting; waiting before trying again"
                );
                tokio::time::sleep(wait).await;
                attempt += 1;
                continue;
            }
            return Ok(Answer {
                status,
                headers: response_headers,
                body,
            });
        }
    }

    fn error(&self, status: StatusCode, body: &[u8]) -> ConnectorError {
        let error = Box::new(error_message(status.as_u16(), body));
        if status == StatusCode::UNAUTHORIZED {
            ConnectorError::Unauthorized {
                connection: self.connection.clone(),
                error,
            }
        } else {
            ConnectorError::Erp {
                connection: self.connection.clone(),
                error,
            }
        }
    }

    /// Sends one record; `Ok(Err(..))` is the record's own failure.
    async fn write_one(
        &self,
        record_type: &str,
        mode: WriteMode,
        record: &Record,
    ) -> Result<RecordOutcome, ConnectorError> {
        let failure = |error| {
            Ok(Err(RecordFailure {
                key: record.key.clone(),
                error,
            }))
        };
        let body = Value::Object(record.fields.clone());
        let (method, url, headers, created) = match (mode, record.external_id.as_deref()) {
            (WriteMode::Create, _) => (
                Method::POST,
                self.record_url(record_type, None)?,
                vec![("X-NetSuite-Idempotency-Key", idempotency_key(&record.key))],
                true,
            ),
            (WriteMode::Upsert, Some(external)) => (
                Method::PUT,
                self.record_url(record_type, Some(&format!("eid:{external}")))?,
                Vec::new(),
                false,
            ),
            (WriteMode::Update, Some(external)) => (
                Method::PATCH,
                self.record_url(record_type, Some(&format!("eid:{external}")))?,
                Vec::new(),
                false,
            ),
            (WriteMode::Upsert | WriteMode::Update, None) => {
                return failure(ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: format!(
                        "record {} has no external id; NetSuite {mode}s records by external id",
                        record.key
                    ),
                })
            }
        };
        let answer = self.send(method, &url, &headers, Some(&body)).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(self.error(answer.status, &answer.body));
        }
        if !answer.status.is_success() {
            return failure(self.error(answer.status, &answer.body));
        }
        // NetSuite answers 204 with the record's URL.
        let id = answer
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|location| location.rsplit('/').next())
            .map(str::to_string)
            .or_else(|| record.external_id.clone())
            .unwrap_or_else(|| record.key.clone());
        Ok(Ok(Written {
            key: record.key.clone(),
            id,
            created,
            etag: None,
        }))
    }
}

#[async_trait]
impl Connector for NetSuiteConnector {
    async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError> {
        let span =
            tracing::info_span!("netsuite.validate_connection", connection = %self.connection);
        async {
            let mut url = self.url("query/v1/suiteql")?;
            url.set_query(Some("limit=1"));
            let answer = self
                .send(
                    Method::POST,
                    &url,
                    &[("Prefer", "transient".into())],
                    Some(&json!({ "q": "SELECT 1 AS ok FROM DUAL" })),
                )
                .await?;
            if !answer.status.is_success() {
                return Err(self.error(answer.status, &answer.body));
            }
            Ok(ConnectionCheck {
                system: format!(
                    "NetSuite account {} at {}",
                    self.realm(),
                    http::display_url(&self.root)
                ),
                identity: Some(self.config.token_id.clone()),
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
        let span = tracing::info_span!("netsuite.write", connection = %self.connection, entity, %mode, records = records.len());
        async {
            self.record_url(entity, None)?;
            let mut outcomes = Vec::with_capacity(records.len());
            let mut stopped: Option<ConnectorError> = None;
            for record in records {
                if let Some(reason) = &stopped {
                    outcomes.push(Err(RecordFailure {
                        key: record.key.clone(),
                        error: ConnectorError::NotProcessed {
                            connection: self.connection.clone(),
                            message: format!("not sent after an earlier record failed: {reason}"),
                        },
                    }));
                    continue;
                }
                match self.write_one(entity, mode, record).await {
                    Ok(outcome) => outcomes.push(outcome),
                    // The account is unreachable or still limiting: this
                    // record failed and the rest wait for a later attempt.
                    Err(err) if err.is_retryable() => {
                        outcomes.push(Err(RecordFailure {
                            key: record.key.clone(),
                            error: err.clone(),
                        }));
                        stopped = Some(err);
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok(outcomes)
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
        let span = tracing::debug_span!("netsuite.find", connection = %self.connection, entity);
        async {
            let config_error = |message: String| ConnectorError::Config {
                connection: self.connection.clone(),
                message,
            };
            if !is_record_type(entity) {
                return Err(config_error(format!(
                    "{entity:?} is not a NetSuite record type"
                )));
            }
            let condition = equality_condition(fields)
                .map_err(|message| config_error(format!("matchOn: {message}")))?;
            let statement = format!("SELECT id FROM {entity} WHERE {condition}");
            let page = self.suiteql(&statement, 1, 0).await?;
            Ok(page.records.into_iter().next().map(|found| Written {
                key: key.to_string(),
                id: match found.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    Some(Value::Number(id)) => id.to_string(),
                    _ => key.to_string(),
                },
                created: false,
                etag: None,
            }))
        }
        .instrument(span)
        .await
    }

    async fn read(
        &self,
        entity: &str,
        query: &ReadQuery,
        next: Option<&str>,
    ) -> Result<Page, ConnectorError> {
        let span = tracing::debug_span!("netsuite.read", connection = %self.connection, entity);
        async {
            let statement = match &query.filter {
                Some(q) if q.trim_start().to_ascii_lowercase().starts_with("select") => q.clone(),
                filter => {
                    if !is_record_type(entity) {
                        return Err(ConnectorError::Config {
                            connection: self.connection.clone(),
                            message: format!("{entity:?} is not a NetSuite record type"),
                        });
                    }
                    let columns = if query.select.is_empty() {
                        "*".to_string()
                    } else {
                        query.select.join(", ")
                    };
                    match filter {
                        Some(filter) => format!("SELECT {columns} FROM {entity} WHERE {filter}"),
                        None => format!("SELECT {columns} FROM {entity}"),
                    }
                }
            };
            let limit = query
                .page_size
                .unwrap_or(DEFAULT_PAGE_SIZE)
                .clamp(1, MAX_PAGE_SIZE);
            let offset: u64 = match next {
                None => 0,
                Some(text) => text.parse().map_err(|_| ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: "the page cursor is not one this connector handed out".into(),
                })?,
            };
            self.suiteql(&statement, limit, offset).await
        }
        .instrument(span)
        .await
    }
}

impl NetSuiteConnector {
    /// One page of the SuiteQL `statement`: `limit` rows from `offset`.
    async fn suiteql(
        &self,
        statement: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Page, ConnectorError> {
        let mut url = self.url("query/v1/suiteql")?;
        url.set_query(Some(&format!("limit={limit}&offset={offset}")));
        let answer = self
            .send(
                Method::POST,
                &url,
                &[("Prefer", "transient".into())],
                Some(&json!({ "q": statement })),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.error(answer.status, &answer.body));
        }
        suiteql_page(&answer.body, offset).map_err(|message| ConnectorError::Protocol {
            connection: self.connection.clone(),
            url: http::display_url(&url),
            message,
        })
    }
}

/// Parses `body` as each kind of answer the connector reads from NetSuite;
/// `crate::fuzzing` reaches it.
#[cfg(fuzzing)]
pub(crate) fn parse_answer(status: u16, body: &[u8]) {
    let _ = error_message(status, body);
    if let Ok(status) = StatusCode::from_u16(status) {
        let _ = is_throttled(status, body);
    }
    let _ = suiteql_page(body, u64::from(status));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netsuite_error_bodies_become_typed_messages() {
        let body = br#"{"type":"https://www.rfc-editor.org/rfc/rfc9110.html#section-15.5.1","title":"Bad Request","status":400,
            "o:errorDetails":[{"detail":"Invalid value for the resource or sub-resource field 'email'.","o:errorPath":"email","o:errorCode":"INVALID_VALUE"},
                              {"detail":"Please enter a value for Company Name.","o:errorCode":"USER_ERROR"}]}"#;
        let m = error_message(400, body);
        assert_eq!(m.code.as_deref(), Some("INVALID_VALUE"));
        assert_eq!(m.target.as_deref(), Some("email"));
        assert_eq!(m.details.len(), 1);
        assert_eq!(
            error_message(502, b"<html>Bad gateway</html>").message,
            "<html>Bad gateway</html>"
        );
        assert_eq!(
            error_message(404, br#"{"title":"Not Found","status":404}"#).message,
            "Not Found"
        );
    }

    #[test]
    fn throttling_is_recognised_by_status_and_by_code() {
        assert!(is_throttled(StatusCode::TOO_MANY_REQUESTS, b""));
        let body = br#"{"status":400,"o:errorDetails":[{"detail":"Concurrent request limit exceeded. Request blocked.","o:errorCode":"CONCURRENCY_LIMIT_EXCEEDED"}]}"#;
        assert!(is_throttled(StatusCode::BAD_REQUEST, body));
        assert!(!is_throttled(
            StatusCode::BAD_REQUEST,
            br#"{"o:errorDetails":[{"o:errorCode":"USER_ERROR"}]}"#
        ));
    }

    #[test]
    fn idempotency_keys_are_stable_uuids_per_record_key() {
        let a = idempotency_key("run-1/sync/0");
        assert_eq!(a, idempotency_key("run-1/sync/0"));
        assert_ne!(a, idempotency_key("run-1/sync/1"));
        assert!(uuid::Uuid::parse_str(&a).is_ok());
    }

    #[test]
    fn record_types_and_ids_cannot_change_the_path() {
        assert!(is_record_type("customrecord_cm_supplier"));
        assert!(!is_record_type("vendor/../employee"));
        assert_eq!(encode_segment("eid:a/b c"), "eid:a%2Fb%20c");
    }
}
