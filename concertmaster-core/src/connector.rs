//! The `Connector` seam: what an output node needs from an external system
//! (an ERP) to write records into it without losing or duplicating one.
//! For connector authors, and hosts that register connectors.
//!
//! A connector is opened from a connection's config by its
//! [`ConnectorFactory`]; authentication happens inside it, lazily, and is
//! cached (a CSRF token, an OAuth2 access token), so a caller only writes,
//! reads and tests.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::config_schema::config_schema;

/// `url` with the password in it, if any, replaced by `***`, for messages
/// that reach logs, errors and run history: `https://svc:***@erp.acme.test/api`.
/// Only the authority is looked at, so an `@` in the path or query is left
/// alone; a URL without a password comes back unchanged.
///
/// ```
/// use concertmaster_core::connector::url_without_password;
///
/// assert_eq!(
///     url_without_password("postgres://app:s3cret@db:5432/test"),
///     "postgres://app:***@db:5432/test"
/// );
/// assert_eq!(url_without_password("smtp://mail.acme.test:25"), "smtp://mail.acme.test:25");
/// ```
pub fn url_without_password(url: &str) -> String {
    let Some(scheme) = url.find("://").map(|at| at + 3) else {
        return url.to_string();
    };
    let authority_end = url[scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |end| scheme + end);
    let authority = &url[scheme..authority_end];
    match authority.rfind('@') {
        Some(at) if authority[..at].contains(':') => {
            let user = authority[..at].split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme], &url[scheme + at..])
        }
        _ => url.to_string(),
    }
}

/// How [`Connector::write`] treats a record that may exist in the system.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Creates it; a record with its key already there is that record's
    /// failure.
    #[default]
    Create,
    /// Changes the record with its key; one that is not there is a failure.
    /// With [`Record::etag`], only if the record is still at that version.
    Update,
    /// Creates it, or changes the record with its key.
    Upsert,
}

impl fmt::Display for WriteMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Upsert => "upsert",
        })
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The idempotency key (run, node, item): the same record written twice
    /// under one key is written once. Connectors send it where the system
    /// takes one (NetSuite's idempotency header) and name it in outcomes.
    pub key: String,
    /// The record's key in the system (SAP's `BusinessPartner`, NetSuite's
    /// external id): what update and upsert find it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The version an update expects (an OData ETag), so a change made in
    /// the meantime is a [`ConnectorError::Conflict`], not overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The fields, named as the system names them.
    pub fields: Map<String, Value>,
}

impl Record {
    /// A record of `fields` under idempotency key `key`.
    pub fn new(key: impl Into<String>, fields: Map<String, Value>) -> Self {
        Self {
            key: key.into(),
            external_id: None,
            etag: None,
            fields,
        }
    }

    /// With its key in the system.
    pub fn with_external_id(mut self, id: impl Into<String>) -> Self {
        self.external_id = Some(id.into());
        self
    }

    /// With the version an update expects.
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

/// A record the system accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    /// The record's idempotency key.
    pub key: String,
    /// Its id in the system.
    pub id: String,
    /// Whether this write created it (rather than changed it).
    pub created: bool,
    /// Its version after the write, where the system has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

/// A record the system refused, or could not be written, with the reason.
/// The other records of the same call are not affected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {key}: {error}")]
pub struct RecordFailure {
    /// The record's idempotency key.
    pub key: String,
    /// Why: the system's error ([`ConnectorError::Erp`]), a version
    /// conflict ([`ConnectorError::Conflict`]), ...
    pub error: ConnectorError,
}

impl RecordFailure {
    /// Whether writing the record again later may succeed (the system was
    /// busy or down), rather than the record being wrong.
    pub fn is_retryable(&self) -> bool {
        self.error.is_retryable()
    }
}

/// One record's outcome.
pub type RecordOutcome = Result<Written, RecordFailure>;

/// An error as the system reported it: OData's `error` object, NetSuite's
/// `o:errorDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErpMessage {
    /// The HTTP status, when it came over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The system's error code (`BAD_REQUEST`, `USER_ERROR`, `/IWBEP/CM_MGW_RT/022`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The system's message.
    pub message: String,
    /// The field or path it is about, when the system said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Further messages (OData `details`, NetSuite's other error details).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErpMessage>,
}

impl ErpMessage {
    /// A message without code or target.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }
}

impl fmt::Display for ErpMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(status) = self.status {
            write!(f, "HTTP {status} ")?;
        }
        if let Some(code) = &self.code {
            write!(f, "[{code}] ")?;
        }
        f.write_str(&self.message)?;
        if let Some(target) = &self.target {
            write!(f, " (target: {target})")?;
        }
        for detail in &self.details {
            write!(f, "; {detail}")?;
        }
        Ok(())
    }
}

/// What to read: a filter in the system's own language (an OData
/// `$filter`, a SuiteQL statement), the fields, and the page size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ReadQuery {
    /// The filter or query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Only these fields (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// Records per page; the connector's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
}

impl ReadQuery {
    /// Every record, in pages of the connector's default size.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only records matching `filter`.
    pub fn filter(mut self, filter: impl Into<String>) -> Self {
        self.filter = Some(filter.into());
        self
    }

    /// Only these fields.
    pub fn select<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.select = fields.into_iter().map(Into::into).collect();
        self
    }

    /// In pages of `size` records.
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size);
        self
    }
}

/// One page of a read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page {
    /// The records, as the system returned them.
    pub records: Vec<Value>,
    /// Where the next page starts; `None` on the last page. Pass it back to
    /// [`Connector::read`] unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// What "test connection" found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionCheck {
    /// What answered (`SAP OData V4 service at https://...`).
    pub system: String,
    /// What the credentials were accepted as (a user, a client id, an
    /// account), when the system says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// Why a connector call failed as a whole. Per-record refusals of a
/// [`Connector::write`] are [`RecordFailure`]s instead. Messages name the
/// connection and never hold a secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The connection's config is not one this connector accepts.
    #[error("connection {connection}: invalid config: {message}")]
    Config {
        /// The connection.
        connection: String,
        /// What to fix, with the path of the offending field.
        message: String,
    },
    /// The system could not be reached, or the exchange broke off.
    #[error("connection {connection}: {url} could not be reached: {message}")]
    Unreachable {
        /// The connection.
        connection: String,
        /// The URL called (without credentials).
        url: String,
        /// The transport's reason.
        message: String,
    },
    /// The system refused the credentials (HTTP 401, a failed token request).
    #[error("connection {connection}: the system refused the credentials: {error}")]
    Unauthorized {
        /// The connection.
        connection: String,
        /// What the system said.
        error: Box<ErpMessage>,
    },
    /// The record changed since the version the update expected (HTTP 412).
    #[error("connection {connection}: {entity} {id} was changed by someone else (expected version {expected}); read it again and reapply the change")]
    Conflict {
        /// The connection.
        connection: String,
        /// The entity set or record type.
        entity: String,
        /// The record's key.
        id: String,
        /// The version the update expected.
        expected: String,
    },
    /// The system kept answering "too many requests" past the connector's
    /// back-off.
    #[error("connection {connection}: rate limited by the system{}", retry_after.map(|d| format!(", asked to retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The connection.
        connection: String,
        /// The wait the system asked for last.
        retry_after: Option<Duration>,
    },
    /// The system answered with an error of its own.
    #[error("connection {connection}: {error}")]
    Erp {
        /// The connection.
        connection: String,
        /// The system's error.
        error: Box<ErpMessage>,
    },
    /// The system did not process the record: a `$batch` answered for
    /// fewer records than it was sent. Writing it again is safe.
    #[error("connection {connection}: {message}")]
    NotProcessed {
        /// The connection.
        connection: String,
        /// What happened.
        message: String,
    },
    /// The system answered with something the connector cannot read.
    #[error("connection {connection}: unexpected answer from {url}: {message}")]
    Protocol {
        /// The connection.
        connection: String,
        /// The URL called.
        url: String,
        /// What was wrong with it.
        message: String,
    },
}

/// The wait an HTTP `Retry-After` header value asks for at `now`: a
/// number of seconds, or an HTTP date (one that has passed asks for no
/// wait). `None` for a value that is neither; what a caller does with a
/// long wait (cap it, give up) is its own choice.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use concertmaster_core::connector::retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
/// // 1,700,000,060 s after the epoch, a minute later.
/// assert_eq!(
///     retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now),
///     Some(Duration::from_secs(60))
/// );
/// assert_eq!(retry_after("soon", now), None);
/// ```
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl ConnectorError {
    /// Whether calling again later may succeed: the system was unreachable,
    /// busy, or failed on its side (HTTP 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::RateLimited { .. } | Self::NotProcessed { .. } => true,
            Self::Erp { error, .. } => error.status.is_some_and(|s| s >= 500 || s == 429),
            _ => false,
        }
    }

    /// The system's own error, when it gave one.
    pub fn erp_message(&self) -> Option<&ErpMessage> {
        match self {
            Self::Unauthorized { error, .. } | Self::Erp { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// An external system records are written into.
///
/// ```
/// use async_trait::async_trait;
/// use concertmaster_core::{
///     connector::{ConnectionCheck, Connector, ConnectorError, Page, ReadQuery, Record, RecordOutcome, WriteMode, Written},
/// };
///
/// /// Accepts everything and keeps nothing.
/// struct Sink;
///
/// #[async_trait]
/// impl Connector for Sink {
///     async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError> {
///         Ok(ConnectionCheck { system: "sink".into(), identity: None })
///     }
///
///     async fn write(&self, _entity: &str, _mode: WriteMode, records: &[Record])
///         -> Result<Vec<RecordOutcome>, ConnectorError> {
///         Ok(records.iter().map(|r| Ok(Written {
///             key: r.key.clone(), id: r.key.clone(), created: true, etag: None,
///         })).collect())
///     }
///
///     async fn read(&self, _entity: &str, _query: &ReadQuery, _next: Option<&str>)
///         -> Result<Page, ConnectorError> {
///         Ok(Page { records: Vec::new(), next: None })
///     }
/// }
/// ```
#[async_trait]
pub trait Connector: Send + Sync {
    /// Checks that the system answers and accepts the credentials: the
    /// editor's "test connection". Changes nothing in the system.
    async fn validate_connection(&self) -> Result<ConnectionCheck, ConnectorError>;

    /// Writes `records` into `entity` (an OData entity set, a NetSuite record
    /// type). Returns one outcome per record, in order; a record the system
    /// refused does not stop the others. `Err` means the call failed as a
    /// whole and no outcome is known.
    async fn write(
        &self,
        entity: &str,
        mode: WriteMode,
        records: &[Record],
    ) -> Result<Vec<RecordOutcome>, ConnectorError>;

    /// Reads one page of `entity`; `next` is the previous page's
    /// [`Page::next`], `None` for the first.
    async fn read(
        &self,
        entity: &str,
        query: &ReadQuery,
        next: Option<&str>,
    ) -> Result<Page, ConnectorError>;

    /// How long the connector waits for the system's answer before it gives
    /// up on a request. A request given up on may still be carried out
    /// within about as long again, so an export that repeats a create looks
    /// its record up ([`find`](Self::find)) only once that much time has
    /// passed. `None` (the default): no such window.
    fn request_timeout(&self) -> Option<Duration> {
        None
    }

    /// Finds a record of `entity` whose fields equal every one of `fields`
    /// (strings, numbers or booleans): what an export that may be
    /// repeating an earlier attempt looks up before it creates a record
    /// again (`matchOn`), answered as the record `key` would have been
    /// written. `None` when there is none; the first when several match.
    ///
    /// The default says that this connector cannot: configure `keyField`
    /// instead.
    async fn find(
        &self,
        entity: &str,
        key: &str,
        fields: &Map<String, Value>,
    ) -> Result<Option<Written>, ConnectorError> {
        let _ = (key, fields);
        Err(ConnectorError::Config {
            connection: String::new(),
            message: format!(
                "this connector cannot look up {entity} records by their fields (matchOn); \
                 find records by keyField instead"
            ),
        })
    }
}

/// The export node a kind of connector brings: a node that writes each
/// item as a record through a connection of that kind, registered for
/// every factory that describes one (`Connections::register_nodes` in
/// `concertmaster-erp`).
///
/// ```
/// use concertmaster_core::connector::ExportNode;
///
/// let node = ExportNode::new("acme_export", "Acme export")
///     .icon("factory")
///     .entity_field("table", "Acme table (suppliers, parts)")
///     .examples("suppliers", "supplierNo", "name");
/// assert_eq!(node.entity_field, "table");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportNode {
    /// The node type workflows name (`sap_export`).
    pub type_id: String,
    /// The palette's label (`SAP export`); its first word names the system
    /// in the node's description.
    pub label: String,
    /// The palette's icon name.
    pub icon: String,
    /// The config field naming where records go (`entity`, `recordType`).
    pub entity_field: String,
    /// That field's title in the config panel.
    pub entity_title: String,
    /// A destination, the example of that field (`A_BusinessPartner`).
    pub entity_example: String,
    /// A field of the system that holds a record's key, shown as the
    /// example of `keyField` and in messages (`BusinessPartner`).
    pub key_example: String,
    /// A field that identifies a record, the example of `matchOn`.
    pub match_example: String,
}

impl ExportNode {
    /// An export node of type `type_id`, labelled `label`, its records'
    /// destination in the config field `entity`.
    pub fn new(type_id: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            type_id: type_id.into(),
            label: label.into(),
            icon: "upload".into(),
            entity_field: "entity".into(),
            entity_title: "Entity".into(),
            entity_example: "records".into(),
            key_example: "id".into(),
            match_example: "name".into(),
        }
    }

    /// Sets the palette's icon name.
    pub fn icon(mut self, icon: impl Into<String>) -> Self {
        self.icon = icon.into();
        self
    }

    /// Names the config field that says where records go, and its title.
    pub fn entity_field(mut self, name: impl Into<String>, title: impl Into<String>) -> Self {
        self.entity_field = name.into();
        self.entity_title = title.into();
        self
    }

    /// Sets the examples of the destination field, `keyField` and
    /// `matchOn`.
    pub fn examples(
        mut self,
        entity: impl Into<String>,
        key_field: impl Into<String>,
        match_on: impl Into<String>,
    ) -> Self {
        self.entity_example = entity.into();
        self.key_example = key_field.into();
        self.match_example = match_on.into();
        self
    }
}

/// Makes connectors of one kind from their connections' configs.
pub trait ConnectorFactory: Send + Sync {
    /// The kind it makes (`sap`, `netsuite`): a connection's `kind`.
    fn kind(&self) -> &str;

    /// The export node this kind of connector brings, if any. The default:
    /// none.
    fn export_node(&self) -> Option<ExportNode> {
        None
    }

    /// The JSON Schema of its config, for the editor's connection form,
    /// derived from the config struct with [`config_schema`]. Secret
    /// fields carry `"writeOnly": true`.
    fn config_schema(&self) -> Value;

    /// A connector for connection `connection` with `config` (JSON, secrets
    /// in the clear). Checks the config without calling the system.
    fn open(&self, connection: &str, config: &[u8]) -> Result<Arc<dyn Connector>, ConnectorError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let date = |offset: i64| {
            let at =
                UNIX_EPOCH + Duration::from_secs(1_700_000_000u64.saturating_add_signed(offset));
            httpdate::fmt_http_date(at)
        };
        assert_eq!(retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after(&date(-3_600), now),
            Some(Duration::ZERO),
            "past"
        );
        assert_eq!(retry_after(&date(0), now), Some(Duration::ZERO), "now");
        assert_eq!(
            retry_after(&date(86_400 * 30), now),
            Some(Duration::from_secs(86_400 * 30)),
            "far beyond any cap: the caller bounds it"
        );
        // The two obsolete forms RFC 9110 still asks a reader to accept.
        assert_eq!(
            retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after("Tue Nov 14 22:14:20 2023", now),
            Some(Duration::from_secs(60))
        );
        for bad in ["", "-1", "1.5", "soon", "Tue, 14 Nov 2023", "<script>"] {
            assert_eq!(retry_after(bad, now), None, "{bad:?}");
        }
        assert!(retry_after("60", SystemTime::now()).is_some());
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            url_without_password("postgres://app:s3cret@db:5432/test"),
            "postgres://app:***@db:5432/test"
        );
        assert_eq!(
            url_without_password("https://svc:s3cret@erp.acme.test/api?x=@"),
            "https://svc:***@erp.acme.test/api?x=@"
        );
        assert_eq!(
            url_without_password("smtp://mailer:p@ss@mail.acme.test:587?tls=required"),
            "smtp://mailer:***@mail.acme.test:587?tls=required"
        );
        for unchanged in [
            "postgres://app@db/test",
            "sqlite://data.db",
            "smtp://mail.acme.test:25",
            "https://svc@erp.acme.test/a@b",
            "not a url",
        ] {
            assert_eq!(url_without_password(unchanged), unchanged);
        }
    }
}
