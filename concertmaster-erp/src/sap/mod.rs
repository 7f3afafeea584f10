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
mod odata;

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
use serde_json::{json, Map, Value};
use tokio::sync::Mutex;
use tracing::Instrument;

use crate::http;
use crate::secret::Secret;

/// Records per `$batch` unless the config says otherwise.
const DEFAULT_BATCH_SIZE: usize = 50;
/// Largest `batchSize` accepted.
const MAX_BATCH_SIZE: usize = 1000;
/// Records per page of a read unless the query says otherwise.
const DEFAULT_PAGE_SIZE: u32 = 100;
/// A token is renewed this long before it expires (at most a quarter of
/// its lifetime), so it does not expire on the way.
const TOKEN_MARGIN: Duration = Duration::from_secs(30);
/// Times a request answered "429 Too Many Requests" is sent again, after
/// the wait the gateway asks for, before the write fails as rate limited
/// (and the node's own retries take over). A throttled request was not
/// carried out, so sending it again is safe.
const RATE_LIMIT_RETRIES: u32 = 4;
/// Longest wait for a rate limit; a longer `Retry-After` is left to the
/// node's retries.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(30);

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

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

fn default_timeout() -> u64 {
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

/// The CSRF token and the session cookies it belongs to.
struct CsrfSession {
    token: Secret<String>,
    cookies: Secret<String>,
}

struct AccessToken {
    value: Secret<String>,
    renew_at: Instant,
}

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

    /// The `Authorization` header value, fetching a token when needed.
    async fn authorization(&self) -> Result<Secret<String>, ConnectorError> {
        match &self.config.auth {
            SapAuth::Basic { username, password } => {
                use base64::Engine as _;
                let raw = Secret::new(format!("{username}:{}", password.expose()));
                Ok(Secret::new(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw.expose())
                )))
            }
            SapAuth::OAuth2ClientCredentials { .. } => {
                let mut token = self.token.lock().await;
                if let Some(current) = token.as_ref().filter(|t| Instant::now() < t.renew_at) {
                    return Ok(Secret::new(format!("Bearer {}", current.value.expose())));
                }
                let fresh = self.fetch_token().await?;
                let header = Secret::new(format!("Bearer {}", fresh.value.expose()));
                *token = Some(fresh);
                Ok(header)
            }
        }
    }

    async fn fetch_token(&self) -> Result<AccessToken, ConnectorError> {
        let SapAuth::OAuth2ClientCredentials {
            client_id,
            client_secret,
            scope,
            ..
        } = &self.config.auth
        else {
            unreachable!("fetch_token is called for OAuth2 connections only")
        };
        let Some(token_url) = &self.token_url else {
            unreachable!("an OAuth2 connection has a checked token URL")
        };
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            form.push(("scope", scope.as_str()));
        }
        let started = Instant::now();
        let response = self
            .client
            .post(token_url.clone())
            .basic_auth(client_id, Some(client_secret.expose()))
            .header(ACCEPT, "application/json")
            .form(&form)
            .send()
            .instrument(tracing::debug_span!("sap.token", connection = %self.connection))
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: Secret<String>,
            #[serde(default)]
            expires_in: Option<u64>,
        }
        if !status.is_success() {
            // RFC 6749 errors: {"error": "invalid_client", "error_description": "..."}.
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let error = match parsed.get("error").and_then(Value::as_str) {
                Some(code) => ErpMessage {
                    status: Some(status.as_u16()),
                    code: Some(code.to_string()),
                    message: parsed
                        .get("error_description")
                        .and_then(Value::as_str)
                        .unwrap_or("the token endpoint refused the client")
                        .to_string(),
                    ..ErpMessage::default()
                },
                None => http::text_message(status.as_u16(), &body),
            };
            return Err(ConnectorError::Unauthorized {
                connection: self.connection.clone(),
                error: Box::new(error),
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| self.protocol(token_url, "the token response has no access_token"))?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(300));
        let margin = TOKEN_MARGIN.min(lifetime / 4);
        Ok(AccessToken {
            value: token.access_token,
            renew_at: started + lifetime - margin,
        })
    }

    /// Fetches a CSRF token and session cookie with a GET of the service
    /// root, which also proves the credentials.
    async fn fetch_csrf(&self) -> Result<CsrfSession, ConnectorError> {
        let url = self.with_client_param(self.root.clone());
        let authorization = self.authorization().await?;
        let response = self
            .client
            .get(url.clone())
            .header("x-csrf-token", "Fetch")
            .header(ACCEPT, "application/json")
            .header(
                reqwest::header::AUTHORIZATION,
                header_value(&self.connection, authorization.expose())?,
            )
            .send()
            .instrument(tracing::debug_span!("sap.csrf_fetch", connection = %self.connection))
            .await
            .map_err(|err| http::unreachable(&self.connection, &err))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.bytes().await.unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED {
                self.token.lock().await.take();
            }
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let token = response
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.eq_ignore_ascii_case("required"))
            .ok_or_else(|| self.protocol(&url, "the service did not hand out an x-csrf-token"))?
            .to_string();
        let cookies = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(str::trim)
            .filter(|pair| pair.contains('='))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(CsrfSession {
            token: Secret::new(token),
            cookies: Secret::new(cookies),
        })
    }

    /// Sends `call` signed in; a modifying call carries the CSRF token and
    /// its session cookie. A 401 with a cached OAuth2 token and a 403
    /// "CSRF token validation failed" are each answered once by fetching
    /// the token again and repeating the call.
    async fn send(&self, call: &Call) -> Result<reqwest::Response, ConnectorError> {
        let modifying = call.method != Method::GET;
        let mut token_retried = false;
        let mut csrf_retried = false;
        loop {
            let mut request = self
                .client
                .request(
                    call.method.clone(),
                    self.with_client_param(call.url.clone()),
                )
                .header(
                    reqwest::header::AUTHORIZATION,
                    header_value(&self.connection, self.authorization().await?.expose())?,
                );
            if !call
                .headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("accept"))
            {
                request = request.header(ACCEPT, "application/json");
            }
            for (name, value) in &call.headers {
                request = request.header(*name, value);
            }
            if modifying {
                let mut csrf = self.csrf.lock().await;
                if csrf.is_none() {
                    *csrf = Some(self.fetch_csrf().await?);
                }
                if let Some(session) = csrf.as_ref() {
                    request = request.header(
                        "x-csrf-token",
                        header_value(&self.connection, session.token.expose())?,
                    );
                    if !session.cookies.expose().is_empty() {
                        request = request.header(
                            COOKIE,
                            header_value(&self.connection, session.cookies.expose())?,
                        );
                    }
                }
            }
            if let Some((content_type, body)) = &call.body {
                request = request
                    .header(CONTENT_TYPE, content_type.as_str())
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED
                && !token_retried
                && matches!(self.config.auth, SapAuth::OAuth2ClientCredentials { .. })
            {
                token_retried = true;
                self.token.lock().await.take();
                continue;
            }
            if status == StatusCode::FORBIDDEN
                && modifying
                && !csrf_retried
                && csrf_required(response.headers())
            {
                csrf_retried = true;
                tracing::debug!(connection = %self.connection, "CSRF token refused; fetching a new one");
                self.csrf.lock().await.take();
                continue;
            }
            return Ok(response);
        }
    }

    /// Sends `call` and reads the answer: the status, the headers, and the
    /// body as JSON (`Null` when empty).
    async fn exchange(
        &self,
        call: &Call,
    ) -> Result<(StatusCode, HeaderMap, Vec<u8>), ConnectorError> {
        let mut throttled = 0;
        loop {
            let response = self.send(call).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|err| http::unreachable(&self.connection, &err))?;
            if status != StatusCode::TOO_MANY_REQUESTS {
                return Ok((status, headers, body.to_vec()));
            }
            let asked = http::retry_after(&headers);
            let wait = asked.unwrap_or_else(|| Duration::from_millis(500) * 2u32.pow(throttled));
            if throttled == RATE_LIMIT_RETRIES || wait > MAX_RATE_LIMIT_WAIT {
                return Err(ConnectorError::RateLimited {
                    connection: self.connection.clone(),
                    retry_after: asked,
                });
            }
            tracing::info!(
                connection = %self.connection,
                throttled,
                wait_ms = wait.as_millis() as u64,
                "SAP is rate limiting; waiting before sending again"
            );
            tokio::time::sleep(wait).await;
            throttled += 1;
        }
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

    fn record_failure(&self, record: &Record, error: ErpMessage, entity: &str) -> RecordFailure {
        let error = if error.status == Some(412) {
            self.conflict(entity, record)
        } else {
            self.err_erp(error)
        };
        RecordFailure {
            key: record.key.clone(),
            error,
        }
    }

    fn conflict(&self, entity: &str, record: &Record) -> ConnectorError {
        ConnectorError::Conflict {
            connection: self.connection.clone(),
            entity: entity.into(),
            id: record
                .external_id
                .clone()
                .unwrap_or_else(|| record.key.clone()),
            expected: record.etag.clone().unwrap_or_else(|| "*".into()),
        }
    }

    fn body_of(&self, record: &Record) -> Result<String, ConnectorError> {
        serde_json::to_string(&record.fields).map_err(|err| ConnectorError::Config {
            connection: self.connection.clone(),
            message: format!("record {} cannot be sent as JSON: {err}", record.key),
        })
    }

    fn written(
        &self,
        record: &Record,
        created: bool,
        headers: &[(String, String)],
        body: &Value,
        location_key: Option<String>,
    ) -> Written {
        let entity = odata::entity(self.config.version, body.clone());
        let etag = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
            .map(|(_, v)| v.clone())
            .or_else(|| odata::etag_of(&entity));
        Written {
            key: record.key.clone(),
            id: location_key
                .or_else(|| record.external_id.clone())
                .unwrap_or_else(|| record.key.clone()),
            created,
            etag,
        }
    }

    /// Creates `records` in `$batch` requests of `batchSize`.
    async fn create_all(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(self.config.batch_size) {
            if chunk.len() == 1 {
                outcomes.push(self.create_one(entity, &chunk[0]).await?);
            } else {
                outcomes.extend(self.create_batch(entity, chunk).await?);
            }
        }
        Ok(outcomes)
    }

    async fn create_one(
        &self,
        entity: &str,
        record: &Record,
    ) -> Result<RecordOutcome, ConnectorError> {
        let url = self.entity_url(entity, None)?;
        let call = Call {
            method: Method::POST,
            url: url.clone(),
            headers: Vec::new(),
            body: Some((
                "application/json".into(),
                self.body_of(record)?.into_bytes(),
            )),
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            return Ok(Err(self.record_failure(
                record,
                odata::error_message(status.as_u16(), &body),
                entity,
            )));
        }
        let headers = header_pairs(&headers);
        let location = find(&headers, LOCATION.as_str()).and_then(odata::key_of_location);
        let body = self.json_body(&url, &body)?;
        Ok(Ok(self.written(record, true, &headers, &body, location)))
    }

    /// Creates `records` in one `$batch`. A service that stops at the
    /// first refused changeset (OData V4 without continue-on-error, the V2
    /// adapter) answers for fewer records; the rest are sent again in a
    /// new batch, as they were not processed.
    async fn create_batch(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError> {
        let mut outcomes = Vec::with_capacity(records.len());
        while outcomes.len() < records.len() {
            let rest = &records[outcomes.len()..];
            let answers = self.batch_answers(entity, rest).await?;
            if answers.is_empty() {
                outcomes.extend(rest.iter().map(|record| {
                    Err(RecordFailure {
                        key: record.key.clone(),
                        error: ConnectorError::NotProcessed {
                            connection: self.connection.clone(),
                            message: format!(
                                "the $batch answered none of its {} records; record {} was not processed",
                                rest.len(),
                                record.key
                            ),
                        },
                    })
                }));
                break;
            }
            for (record, answer) in rest.iter().zip(answers) {
                outcomes.push(if (200..300).contains(&answer.status) {
                    let location = answer.header("location").and_then(odata::key_of_location);
                    let body = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
                    Ok(self.written(record, true, &answer.headers, &body, location))
                } else {
                    Err(self.record_failure(
                        record,
                        odata::error_message(answer.status, answer.body.as_bytes()),
                        entity,
                    ))
                });
            }
        }
        Ok(outcomes)
    }

    /// Sends one `$batch` creating `records`; the answers, in order.
    async fn batch_answers(
        &self,
        entity: &str,
        records: &[Record],
    ) -> Result<Vec<batch::Answer>, ConnectorError> {
        let creates = records
            .iter()
            .map(|record| {
                Ok(batch::Create {
                    entity,
                    body: self.body_of(record)?,
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        self.entity_url(entity, None)?;
        let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
        let url = self
            .root
            .join("$batch")
            .map_err(|err| self.protocol(&self.root, err.to_string()))?;
        let mut headers = vec![("Accept", "multipart/mixed".to_string())];
        if self.config.version == ODataVersion::V4 {
            // Without it a V4 service may stop at the first failed changeset.
            headers.push(("Prefer", "odata.continue-on-error".to_string()));
        }
        let call = Call {
            method: Method::POST,
            url: url.clone(),
            headers,
            body: Some((
                format!("multipart/mixed; boundary={boundary}"),
                batch::request(&boundary, &creates).into_bytes(),
            )),
        };
        let (status, response_headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let response_type = response_headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let answers = batch::response(response_type, &text)
            .map_err(|message| self.protocol(&url, message))?;
        if answers.len() > records.len() {
            return Err(self.protocol(
                &url,
                format!(
                    "the $batch answered {} times for {} records",
                    answers.len(),
                    records.len()
                ),
            ));
        }
        Ok(answers)
    }

    /// Changes the record with `record.external_id`, expecting `etag`
    /// (`*` for any version).
    async fn update_one(
        &self,
        entity: &str,
        record: &Record,
        etag: &str,
    ) -> Result<RecordOutcome, ConnectorError> {
        let Some(id) = record.external_id.as_deref() else {
            return Ok(Err(RecordFailure {
                key: record.key.clone(),
                error: ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: format!(
                        "record {} has no external id; update and upsert find records by it",
                        record.key
                    ),
                },
            }));
        };
        let url = self.entity_url(entity, Some(id))?;
        let method = match self.config.version {
            ODataVersion::V4 => Method::PATCH,
            // Gateway's partial update in V2.
            ODataVersion::V2 => Method::from_bytes(b"MERGE").unwrap_or(Method::PATCH),
        };
        let call = Call {
            method,
            url: url.clone(),
            headers: vec![(IF_MATCH.as_str(), etag.to_string())],
            body: Some((
                "application/json".into(),
                self.body_of(record)?.into_bytes(),
            )),
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if !status.is_success() {
            let expecting = Record {
                etag: Some(etag.to_string()),
                ..record.clone()
            };
            return Ok(Err(self.record_failure(
                &expecting,
                odata::error_message(status.as_u16(), &body),
                entity,
            )));
        }
        let headers = header_pairs(&headers);
        let body = self.json_body(&url, &body)?;
        Ok(Ok(self.written(
            record,
            false,
            &headers,
            &body,
            Some(id.to_string()),
        )))
    }

    /// The current ETag of `id`, or `None` when there is no such record.
    async fn current_etag(&self, entity: &str, id: &str) -> Result<Option<String>, ConnectorError> {
        let url = self.entity_url(entity, Some(id))?;
        let call = Call {
            method: Method::GET,
            url: url.clone(),
            headers: Vec::new(),
            body: None,
        };
        let (status, headers, body) = self.exchange(&call).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
        }
        let entity = odata::entity(self.config.version, self.json_body(&url, &body)?);
        Ok(Some(
            headers
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| odata::etag_of(&entity))
                .unwrap_or_else(|| "*".into()),
        ))
    }

    /// Reads the record's version and updates it, or creates it when it is
    /// not there. A version changed or a record created in between is
    /// met by one more round.
    async fn upsert_one(
        &self,
        entity: &str,
        record: &Record,
    ) -> Result<RecordOutcome, ConnectorError> {
        let Some(id) = record.external_id.as_deref() else {
            return self.update_one(entity, record, "*").await;
        };
        let mut outcome = Ok(Err(RecordFailure {
            key: record.key.clone(),
            error: self.conflict(entity, record),
        }));
        for _round in 0..2 {
            outcome = match self.current_etag(entity, id).await? {
                Some(etag) => self.update_one(entity, record, &etag).await,
                None => self.create_one(entity, record).await,
            };
            match &outcome {
                Ok(Err(failure)) if matches!(failure.error, ConnectorError::Conflict { .. }) => {
                    continue
                }
                Ok(Err(failure))
                    if failure
                        .error
                        .erp_message()
                        .is_some_and(|m| m.status == Some(409)) =>
                {
                    continue
                }
                _ => break,
            }
        }
        outcome
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

fn csrf_required(headers: &HeaderMap) -> bool {
    headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("required"))
}

fn header_value(connection: &str, value: &str) -> Result<HeaderValue, ConnectorError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ConnectorError::Config {
        connection: connection.into(),
        message: "a credential holds characters HTTP headers cannot carry".into(),
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Where the next page of a read starts: the offset of the current client
/// page, how many of it were served, and the server's link within it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Cursor {
    skip: u64,
    served: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
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
        let span = tracing::debug_span!("sap.find", connection = %self.connection, entity);
        async {
            let filter =
                odata::equality_filter(fields).map_err(|message| ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: format!("matchOn: {message}"),
                })?;
            let mut url = self.entity_url(entity, None)?;
            let mut pairs = vec![("$top", "1".to_string()), ("$filter", filter)];
            if self.config.version == ODataVersion::V2 {
                pairs.push(("$format", "json".into()));
            }
            url.set_query(Some(&odata::query(&pairs)));
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                // Full metadata names each entity's URL (@odata.id), which
                // holds its key; V2 names it in __metadata.uri anyway.
                headers: vec![("Accept", "application/json;odata.metadata=full".into())],
                body: None,
            };
            let (status, _, body) = self.exchange(&call).await?;
            if !status.is_success() {
                return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
            }
            let (records, _) = odata::collection(self.config.version, self.json_body(&url, &body)?)
                .map_err(|message| self.protocol(&url, message))?;
            Ok(records.into_iter().next().map(|found| {
                let id = odata::entity_url_of(&found)
                    .and_then(odata::key_of_location)
                    .unwrap_or_else(|| key.to_string());
                Written {
                    key: key.to_string(),
                    id,
                    created: false,
                    etag: odata::etag_of(&found),
                }
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
        let span = tracing::debug_span!("sap.read", connection = %self.connection, entity);
        async {
            let page_size = u64::from(query.page_size.unwrap_or(DEFAULT_PAGE_SIZE).max(1));
            let cursor = match next {
                None => Cursor {
                    skip: 0,
                    served: 0,
                    link: None,
                },
                Some(text) => serde_json::from_str(text).map_err(|_| ConnectorError::Config {
                    connection: self.connection.clone(),
                    message: "the page cursor is not one this connector handed out".into(),
                })?,
            };
            let url = match &cursor.link {
                Some(link) => self.follow(link)?,
                None => {
                    let mut url = self.entity_url(entity, None)?;
                    let mut pairs = vec![("$top", page_size.to_string())];
                    if cursor.skip > 0 {
                        pairs.push(("$skip", cursor.skip.to_string()));
                    }
                    if let Some(filter) = &query.filter {
                        pairs.push(("$filter", filter.clone()));
                    }
                    if !query.select.is_empty() {
                        pairs.push(("$select", query.select.join(",")));
                    }
                    if self.config.version == ODataVersion::V2 {
                        pairs.push(("$format", "json".into()));
                    }
                    url.set_query(Some(&odata::query(&pairs)));
                    url
                }
            };
            let call = Call {
                method: Method::GET,
                url: url.clone(),
                headers: Vec::new(),
                body: None,
            };
            let (status, _, body) = self.exchange(&call).await?;
            if !status.is_success() {
                return Err(self.err_erp(odata::error_message(status.as_u16(), &body)));
            }
            let (records, link) =
                odata::collection(self.config.version, self.json_body(&url, &body)?)
                    .map_err(|message| self.protocol(&url, message))?;
            let served = cursor.served + records.len() as u64;
            let next = if link.is_some() {
                Some(Cursor {
                    skip: cursor.skip,
                    served,
                    link,
                })
            } else if served >= page_size {
                Some(Cursor {
                    skip: cursor.skip + served,
                    served: 0,
                    link: None,
                })
            } else {
                None
            };
            let next = next
                .map(|c| serde_json::to_string(&c))
                .transpose()
                .map_err(|err| self.protocol(&url, err.to_string()))?;
            Ok(Page { records, next })
        }
        .instrument(span)
        .await
    }
}

impl SapConnector {
    /// The URL of a server's next link, on this service's own origin: a
    /// link naming another host (a proxy's internal name) is followed on
    /// the configured one, so credentials go nowhere else.
    fn follow(&self, link: &str) -> Result<Url, ConnectorError> {
        let mut url = self.root.join(link).map_err(|err| {
            self.protocol(
                &self.root,
                format!("the next link {link:?} is not a URL: {err}"),
            )
        })?;
        if url.origin() != self.root.origin() {
            let mut rebased = self.root.clone();
            rebased.set_path(url.path());
            rebased.set_query(url.query());
            url = rebased;
        }
        Ok(url)
    }
}
