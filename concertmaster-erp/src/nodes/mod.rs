//! The output nodes that write items into an ERP: `sap_export` and
//! `netsuite_sync`.
//!
//! Each item becomes one record (through the field mapping) under the
//! idempotency key of (run, node, item). Accepted items leave on `ok` with
//! what the ERP made of them; refused ones leave on `error` with the ERP's
//! message. A failure that may pass (the ERP down or rate limiting) fails
//! the attempt instead, so the engine's retry policy tries again; a
//! repeated attempt writes records that have a key by upsert, so what an
//! earlier attempt created is updated, not created twice.
//!
//! In `batch` sync mode a node hands its records to the connection's
//! batcher and waits (durably, as a suspended run); the batcher writes the
//! records of many runs in one call when `batchSize` records are waiting or
//! `flushIntervalSeconds` have passed, and resumes each run with its own
//! outcomes. Should the process stop in between, each waiting node wakes
//! at its deadline and writes its records itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    connector::{config_schema, ConnectorError, ExportNode, Record, RecordOutcome, WriteMode},
    node::{read_config, ConfigError, NodeCategory, RegistryError, Suspend, Wakeup, MAIN_PORT},
    Engine, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    TenantId,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tracing::Instrument;

use crate::connections::{ConnectionError, Connections};

mod batch;

pub(crate) use batch::Batcher;
use batch::*;

/// The port accepted items leave on.
pub const OK_PORT: &str = "ok";
/// The port refused items leave on.
pub const REFUSED_PORT: &str = "error";

const DEFAULT_BATCH_SIZE: usize = 100;
const DEFAULT_FLUSH_SECONDS: u64 = 60;

/// Whether records go out with the run or are gathered across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
enum SyncMode {
    #[default]
    RealTime,
    Batch,
}

/// Whether a create may make a record twice when an attempt is repeated
/// after the ERP acted but its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
enum Duplicates {
    /// A create must be able to find what it may have made: `keyField` or
    /// `matchOn` (checked at publish).
    #[default]
    Refused,
    /// The workflow accepts a record created twice.
    Allowed,
}

/// How one record is written.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// With `mode`.
    Write(WriteMode),
    /// Looked up by these fields first (an earlier attempt may have made
    /// it); created when not found.
    CreateUnlessFound(Map<String, Value>),
}

/// A mapped field: a JSON pointer into the item, or a constant.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
enum Source {
    /// A JSON pointer into the item (`/company/name`).
    Pointer(#[schemars(regex(pattern = "^(/.*)?$"))] String),
    /// A constant.
    Constant { value: Value },
}

/// Config of an export node. The field naming where records go is
/// `entity` here and in the struct; each connector's node may call it
/// otherwise in its configs (`recordType`), see [`Flavour::read`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Update and upsert find records by their key (checked again when the node
// is built; here so the editor says it while drawing). A create without
// keyField or matchOn is refused when the node is built (`check`), with a
// message that names both and "duplicates": "allowed": a schema rule would
// say less.
#[schemars(extend(
    "if" = { "properties": { "mode": { "enum": ["update", "upsert"] } }, "required": ["mode"] },
    "then" = { "required": ["keyField"] }
))]
struct ExportConfig {
    /// The connection records are written through.
    #[schemars(length(min = 1))]
    connection: String,
    /// Where records go: an entity set, a record type.
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    entity: String,
    /// ERP field -> JSON pointer into the item, or `{"value": constant}`;
    /// without it, the item's fields as they are.
    #[schemars(title = "Fields")]
    mapping: Option<BTreeMap<String, Source>>,
    /// The ERP field holding the record's key: a repeated attempt
    /// updates what an earlier one created.
    #[schemars(title = "Key field")]
    key_field: Option<String>,
    /// ERP fields that identify a record, looked up before a repeated
    /// create.
    #[schemars(
        title = "Match on",
        length(min = 1),
        inner(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$")),
        extend("uniqueItems" = true)
    )]
    match_on: Option<Vec<String>>,
    /// Whether a create without keyField or matchOn may make a record twice.
    #[serde(default)]
    duplicates: Duplicates,
    /// Create, update or upsert.
    #[serde(default)]
    mode: WriteMode,
    /// Write with the run, or gathered with other runs' records.
    #[serde(default)]
    sync: SyncMode,
    /// `batch`: records per call.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 1000))]
    batch_size: usize,
    /// `batch`: longest a record waits for its batch, in seconds.
    #[serde(default = "default_flush_seconds")]
    #[schemars(range(min = 1, max = 86_400))]
    flush_interval_seconds: u64,
}

fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

fn default_flush_seconds() -> u64 {
    DEFAULT_FLUSH_SECONDS
}

/// An export node type: what its connector's factory describes, and the
/// kind of connection it writes through.
#[derive(Debug)]
struct Flavour {
    kind: String,
    node: ExportNode,
}

impl Flavour {
    /// The config schema of this node type: [`ExportConfig`]'s, with the
    /// destination field named and titled as the connector says.
    fn schema(&self) -> Value {
        let mut schema = config_schema::<ExportConfig>();
        let node = &self.node;
        let field = node.entity_field.as_str();
        if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            if let Some(mut entity) = properties.remove("entity") {
                entity["title"] = json!(node.entity_title);
                entity["examples"] = json!([node.entity_example]);
                properties.insert(field.to_string(), entity);
            }
            if let Some(connection) = properties.get_mut("connection") {
                connection["title"] = json!(format!("{} connection id", self.kind));
            }
            if let Some(key) = properties.get_mut("keyField") {
                key["examples"] = json!([node.key_example]);
            }
            if let Some(match_on) = properties.get_mut("matchOn") {
                match_on["examples"] = json!([[node.match_example]]);
            }
        }
        schema["examples"] = json!([
            {
                "connection": format!("{}-prod", self.kind),
                field: node.entity_example,
                "keyField": node.key_example,
                "mode": "upsert",
            },
            {
                "connection": format!("{}-prod", self.kind),
                field: node.entity_example,
                "matchOn": [node.match_example],
                "sync": "batch",
                "batchSize": 200,
            }
        ]);
        for list in ["required", concertmaster_core::node::ORDER_KEYWORD] {
            if let Some(names) = schema.get_mut(list).and_then(Value::as_array_mut) {
                for name in names.iter_mut().filter(|name| *name == "entity") {
                    *name = json!(field);
                }
            }
        }
        schema
    }

    /// Reads a config written for this node type: its destination field
    /// under the connector's name, every other field as in
    /// [`ExportConfig`].
    fn read(&self, config: &Value) -> Result<ExportConfig, ConfigError> {
        let field = self.node.entity_field.as_str();
        if field == "entity" {
            return read_config(config);
        }
        let mut config = config.clone();
        if let Some(fields) = config.as_object_mut() {
            if fields.contains_key("entity") {
                return Err(ConfigError::new(format!(
                    "unknown field `entity`; {} names where records go `{field}`",
                    self.node.type_id
                ))
                .at("/entity"));
            }
            if let Some(value) = fields.remove(field) {
                fields.insert("entity".into(), value);
            }
        }
        read_config(&config).map_err(|mut err: ConfigError| {
            if err.pointer == "/entity" || err.pointer.starts_with("/entity/") {
                err.pointer = format!("/{field}{}", &err.pointer["/entity".len()..]);
            }
            err.message = err.message.replace("`entity`", &format!("`{field}`"));
            err
        })
    }
}

/// An entity, record type or field name as the schema's pattern allows:
/// `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

fn check(config: &ExportConfig, flavour: &Flavour) -> Result<(), ConfigError> {
    let entity = &config.entity;
    if !is_identifier(entity) {
        return Err(
            ConfigError::new(format!("{entity:?} is not an entity or record type name"))
                .at(format!("/{}", flavour.node.entity_field)),
        );
    }
    if config.connection.is_empty() {
        return Err(ConfigError::new("name the connection to write through").at("/connection"));
    }
    if let Some(mapping) = &config.mapping {
        for (field, source) in mapping {
            if let Source::Pointer(pointer) = source {
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(ConfigError::new(format!(
                        "{pointer:?} is not a JSON pointer (start it with '/'; for a constant write {{\"value\": ...}})"
                    ))
                    .at(format!("/mapping/{}", field.replace('~', "~0").replace('/', "~1"))));
                }
            }
        }
    }
    if let Some(fields) = &config.match_on {
        if fields.is_empty() {
            return Err(ConfigError::new("name at least one ERP field to match on").at("/matchOn"));
        }
        for (i, field) in fields.iter().enumerate() {
            if !is_identifier(field) {
                return Err(
                    ConfigError::new(format!("{field:?} is not an ERP field name"))
                        .at(format!("/matchOn/{i}")),
                );
            }
        }
    }
    if config.mode == WriteMode::Create
        && config.key_field.is_none()
        && config.match_on.is_none()
        && config.duplicates == Duplicates::Refused
    {
        return Err(ConfigError::new(format!(
            "a create without keyField or matchOn cannot tell whether an earlier attempt already \
             made the record (the ERP may have acted on a request whose answer was lost), so a \
             retry could create it twice; set keyField (the ERP's key, e.g. {:?}), or matchOn (ERP \
             fields that identify a record, e.g. [{:?}]), or \"duplicates\": \"allowed\" to accept \
             duplicates",
            flavour.node.key_example, flavour.node.match_example
        ))
        .at("/matchOn"));
    }
    if matches!(config.mode, WriteMode::Update | WriteMode::Upsert) && config.key_field.is_none() {
        return Err(ConfigError::new(format!(
            "mode {} finds records by their key: set keyField (e.g. {:?})",
            config.mode, flavour.node.key_example
        ))
        .at("/keyField"));
    }
    if !(1..=1000).contains(&config.batch_size) {
        return Err(ConfigError::new("batchSize is between 1 and 1000").at("/batchSize"));
    }
    if !(1..=86_400).contains(&config.flush_interval_seconds) {
        return Err(
            ConfigError::new("flushIntervalSeconds is between 1 and 86400")
                .at("/flushIntervalSeconds"),
        );
    }
    Ok(())
}

/// Registers the export node of every connector whose factory describes
/// one (`sap_export`, `netsuite_sync`, a host's own) for `connections`.
pub(crate) fn register(
    registry: &mut NodeRegistry,
    connections: &Connections,
    batcher: &Arc<Batcher>,
) -> Result<(), RegistryError> {
    for (kind, node) in connections.export_nodes() {
        let flavour = Arc::new(Flavour { kind, node });
        let connections = connections.clone();
        let batcher = Arc::clone(batcher);
        let system = flavour.node.label.split(' ').next().unwrap_or_default();
        let descriptor = NodeDescriptor::new(flavour.node.type_id.clone(), NodeCategory::Output)
            .with_side_effects()
            .label(flavour.node.label.clone())
            .icon(flavour.node.icon.clone())
            .description(format!(
                "Writes each item as a {system} record through a connection. Accepted items leave on `ok` \
                 (with `erp`: id, created, etag), refused ones on `error` (with `erpError`: the ERP's \
                 code, message and field). With keyField set, a repeated attempt updates what an \
                 earlier one created instead of creating it twice."
            ))
            .config_schema(flavour.schema())
            .outputs([OK_PORT, REFUSED_PORT]);
        registry.register(
            descriptor,
            move |config: &Value| -> Result<Export, ConfigError> {
                let config = flavour.read(config)?;
                check(&config, &flavour)?;
                Ok(Export {
                    flavour: Arc::clone(&flavour),
                    config,
                    connections: connections.clone(),
                    batcher: Arc::clone(&batcher),
                })
            },
        )?;
    }
    Ok(())
}

struct Export {
    flavour: Arc<Flavour>,
    config: ExportConfig,
    connections: Connections,
    batcher: Arc<Batcher>,
}

impl Export {
    /// The item as the ERP record: mapped fields and key.
    fn record(&self, key: String, item: &Item) -> Result<Record, String> {
        let fields = match &self.config.mapping {
            None => item.clone(),
            Some(mapping) => {
                let whole = Value::Object(item.clone());
                let mut fields = Map::new();
                for (field, source) in mapping {
                    let value = match source {
                        Source::Constant { value } => Some(value.clone()),
                        Source::Pointer(pointer) => whole.pointer(pointer).cloned(),
                    };
                    if let Some(value) = value {
                        fields.insert(field.clone(), value);
                    }
                }
                fields
            }
        };
        let mut record = Record::new(key, fields);
        if let Some(key_field) = &self.config.key_field {
            let id = match record.fields.get(key_field) {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(format!(
                        "the record has no {key_field} (keyField) to find it by"
                    ))
                }
            };
            record.external_id = Some(id);
        }
        // Checked on every attempt: a record that could not be found
        // again must not be created the first time either.
        for field in self.config.match_on.iter().flatten() {
            if record.fields.get(field).is_none_or(Value::is_null) {
                return Err(format!("the record has no {field} (matchOn) to find it by"));
            }
        }
        Ok(record)
    }

    /// How each record is written: a repeated attempt (or a write after
    /// a lost batch) turns creates of keyed records into upserts, and looks
    /// up records with `matchOn` fields before it creates them again.
    fn step_for(&self, record: &Record, repeated: bool) -> Step {
        if self.config.mode != WriteMode::Create || !repeated {
            return Step::Write(self.config.mode);
        }
        if record.external_id.is_some() {
            return Step::Write(WriteMode::Upsert);
        }
        match &self.config.match_on {
            Some(fields) => Step::CreateUnlessFound(
                fields
                    .iter()
                    .filter_map(|f| record.fields.get(f).map(|v| (f.clone(), v.clone())))
                    .collect(),
            ),
            None => Step::Write(WriteMode::Create),
        }
    }

    /// Each record with how it is written.
    fn steps(&self, records: &[Record], repeated: bool) -> Vec<(Step, Record)> {
        records
            .iter()
            .map(|r| (self.step_for(r, repeated), r.clone()))
            .collect()
    }

    async fn write(
        &self,
        tenant: &TenantId,
        steps: &[(Step, Record)],
    ) -> Result<Vec<Outcome>, NodeError> {
        let connector = self
            .connections
            .open(tenant, &self.config.connection)
            .await
            .map_err(open_failed)?;
        self.check_kind(tenant).await?;
        write_steps(
            connector.as_ref(),
            &self.config.connection,
            &self.config.entity,
            steps,
        )
        .await
        .map_err(|err| connector_failed(&err))
    }

    async fn check_kind(&self, tenant: &TenantId) -> Result<(), NodeError> {
        let stored = self
            .connections
            .get(tenant, &self.config.connection)
            .await
            .map_err(open_failed)?;
        if stored.kind != self.flavour.kind {
            return Err(NodeError::fatal(format!(
                "connection {} is a {} connection; {} writes through a {} connection",
                stored.id, stored.kind, self.flavour.node.type_id, self.flavour.kind
            )));
        }
        Ok(())
    }

    /// Sorts the items by outcome onto the ports; a failure that may pass
    /// fails the attempt so the engine tries again.
    fn finish(
        &self,
        items: Vec<Item>,
        refused_early: Vec<(usize, String)>,
        outcomes: Vec<(usize, Outcome)>,
    ) -> Result<NodeOutcome, NodeError> {
        let retry: Vec<&Outcome> = outcomes
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o.retryable())
            .collect();
        if !retry.is_empty() {
            let first = retry[0].error_text();
            return Err(NodeError::retryable(format!(
                "{} of {} records could not be written yet ({first}); the attempt is retried",
                retry.len(),
                items.len()
            ))
            .with_details(json!({ "connection": self.config.connection, "failures": retry.iter().map(|o| o.json()).collect::<Vec<_>>() })));
        }
        let mut ports = Ports::new();
        let mut ok = Vec::new();
        let mut refused = Vec::new();
        let mut early: HashMap<usize, String> = refused_early.into_iter().collect();
        let mut by_index: HashMap<usize, Outcome> = outcomes.into_iter().collect();
        for (index, mut item) in items.into_iter().enumerate() {
            if let Some(message) = early.remove(&index) {
                item.insert(
                    "erpError".into(),
                    json!({ "message": message, "connection": self.config.connection }),
                );
                refused.push(item);
                continue;
            }
            match by_index.remove(&index) {
                Some(Outcome::Written(written)) => {
                    item.insert("erp".into(), json!({ "connection": self.config.connection, "entity": self.config.entity, "id": written["id"], "created": written["created"], "etag": written.get("etag").cloned().unwrap_or(Value::Null), "key": written["key"] }));
                    ok.push(item);
                }
                Some(Outcome::Refused(error)) => {
                    item.insert("erpError".into(), error);
                    refused.push(item);
                }
                None => {}
            }
        }
        ports.extend(OK_PORT, ok);
        ports.extend(REFUSED_PORT, refused);
        Ok(NodeOutcome::Done(ports))
    }
}

/// One record's outcome in the form a resumed node reads back.
#[derive(Debug, Clone)]
enum Outcome {
    Written(Value),
    Refused(Value),
}

impl Outcome {
    fn refused(error: &ConnectorError, retryable: bool) -> Self {
        let message = error.erp_message();
        Outcome::Refused(json!({
            // The system's own words where it gave them; ours otherwise.
            "message": message.map_or_else(|| error.to_string(), |m| m.message.clone()),
            "code": message.and_then(|m| m.code.clone()),
            "target": message.and_then(|m| m.target.clone()),
            "status": message.and_then(|m| m.status),
            "details": message.map(|m| m.details.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap_or_default(),
            "retryable": retryable,
        }))
    }

    fn retryable(&self) -> bool {
        matches!(self, Outcome::Refused(e) if e["retryable"] == true)
    }

    fn error_text(&self) -> String {
        match self {
            Outcome::Refused(e) => e["message"].as_str().unwrap_or_default().to_string(),
            Outcome::Written(_) => String::new(),
        }
    }

    fn json(&self) -> Value {
        match self {
            Outcome::Written(w) => json!({ "written": w }),
            Outcome::Refused(e) => json!({ "refused": e }),
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        if let Some(w) = value.get("written") {
            Some(Outcome::Written(w.clone()))
        } else {
            value.get("refused").map(|e| Outcome::Refused(e.clone()))
        }
    }
}

impl From<RecordOutcome> for Outcome {
    fn from(outcome: RecordOutcome) -> Self {
        match outcome {
            Ok(written) => Outcome::Written(serde_json::to_value(&written).unwrap_or(Value::Null)),
            Err(failure) => Outcome::refused(&failure.error, failure.is_retryable()),
        }
    }
}

/// Writes each record as its step says, keeping their order within each
/// kind of write; one outcome per record. Records looked up and found are
/// reported written (not created) without being written again.
async fn write_steps(
    connector: &dyn concertmaster_core::connector::Connector,
    connection: &str,
    entity: &str,
    steps: &[(Step, Record)],
) -> Result<Vec<Outcome>, ConnectorError> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; steps.len()];
    let mut modes: Vec<Option<WriteMode>> = Vec::with_capacity(steps.len());
    let looks_up = steps
        .iter()
        .any(|(step, _)| matches!(step, Step::CreateUnlessFound(_)));
    if let Some(window) = connector.request_timeout().filter(|_| looks_up) {
        // A create the last attempt gave up on may still be carried out
        // within the connector's timeout: look only once it would have been.
        tokio::time::sleep(window).await;
    }
    for (i, (step, record)) in steps.iter().enumerate() {
        modes.push(match step {
            Step::Write(mode) => Some(*mode),
            Step::CreateUnlessFound(fields) => {
                match connector.find(entity, &record.key, fields).await {
                    Ok(Some(found)) => {
                        outcomes[i] = Some(Outcome::Written(
                            serde_json::to_value(&found).unwrap_or(Value::Null),
                        ));
                        None
                    }
                    Ok(None) => Some(WriteMode::Create),
                    Err(err) if err.is_retryable() => return Err(err),
                    Err(err) => {
                        outcomes[i] = Some(Outcome::refused(&err, false));
                        None
                    }
                }
            }
        });
    }
    for mode in [WriteMode::Create, WriteMode::Update, WriteMode::Upsert] {
        let (indices, group): (Vec<usize>, Vec<Record>) = steps
            .iter()
            .enumerate()
            .filter(|(i, _)| modes[*i] == Some(mode))
            .map(|(i, (_, r))| (i, r.clone()))
            .unzip();
        if group.is_empty() {
            continue;
        }
        let written = connector.write(entity, mode, &group).await?;
        for (i, outcome) in indices.into_iter().zip(written) {
            outcomes[i] = Some(Outcome::from(outcome));
        }
    }
    Ok(outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Outcome::refused(
                    &ConnectorError::NotProcessed {
                        connection: connection.to_string(),
                        message: "the connector returned no outcome for this record".into(),
                    },
                    true,
                )
            })
        })
        .collect())
}

fn open_failed(err: ConnectionError) -> NodeError {
    match err {
        ConnectionError::Store(_) => NodeError::retryable(err.to_string()),
        ConnectionError::Connector(err) => connector_failed(&err),
        err => NodeError::fatal(err.to_string()),
    }
}

fn connector_failed(err: &ConnectorError) -> NodeError {
    if let ConnectorError::RateLimited {
        retry_after: Some(wait),
        ..
    } = err
    {
        NodeError::retryable(err.to_string()).with_retry_after(*wait)
    } else if err.is_retryable() {
        NodeError::retryable(err.to_string())
    } else {
        NodeError::fatal(err.to_string())
    }
}

#[async_trait]
impl Node for Export {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        let mut refused_early = Vec::new();
        let mut records = Vec::new();
        let mut indices = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match self.record(ctx.item_key(index), item) {
                Ok(record) => {
                    records.push(record);
                    indices.push(index);
                }
                Err(message) => refused_early.push((index, message)),
            }
        }
        if records.is_empty() {
            return self.finish(items, refused_early, Vec::new());
        }
        // An earlier execution of this step may have written some of the
        // records (its answer lost, or the process stopped before its
        // result was committed): look before creating again.
        let repeated = ctx.may_be_repeat();

        let outcomes = match (self.config.sync, ctx.resumed()) {
            (SyncMode::RealTime, _) => {
                self.write(ctx.tenant(), &self.steps(&records, repeated))
                    .await?
            }
            (SyncMode::Batch, None) => {
                // Fail now, not at the flush, on a connection that cannot be used.
                self.connections
                    .open(ctx.tenant(), &self.config.connection)
                    .await
                    .map_err(open_failed)?;
                self.check_kind(ctx.tenant()).await?;
                let key = batch_key(ctx);
                let interval = Duration::from_secs(self.config.flush_interval_seconds);
                let deadline = ctx.now()
                    + chrono::Duration::from_std(interval * 2 + Duration::from_secs(30))
                        .unwrap_or(chrono::Duration::days(1));
                self.batcher.add(
                    &self.connections,
                    Group {
                        tenant: ctx.tenant().clone(),
                        connection: self.config.connection.clone(),
                        entity: self.config.entity.clone(),
                    },
                    Entry {
                        wait_key: key.clone(),
                        result_key: batch_result_key(ctx),
                        steps: self.steps(&records, repeated),
                    },
                    self.config.batch_size,
                    interval,
                )?;
                return Ok(NodeOutcome::suspend(
                    Suspend::until_event(key)
                        .with_deadline(deadline)
                        .with_state(json!({ "records": records.len() })),
                ));
            }
            (SyncMode::Batch, Some(resumed)) if resumed.by_timer() => {
                // The batcher did not claim the records in time (the
                // process stopped: the timer took the wait, so no batch
                // will write them), or claimed them and did not answer in
                // time: the records may have been written, so look first.
                self.write(ctx.tenant(), &self.steps(&records, true))
                    .await?
            }
            (SyncMode::Batch, Some(resumed)) if resumed.wakeup_payload()["claimed"] == true => {
                // The batcher took the wait before writing: only it writes
                // the records now, and it answers on the result key (held
                // for this node should it answer first).
                let deadline = ctx.now()
                    + chrono::Duration::from_std(BATCH_RESULT_PATIENCE)
                        .unwrap_or(chrono::Duration::days(1));
                return Ok(NodeOutcome::suspend(
                    Suspend::until_event(batch_result_key(ctx))
                        .with_deadline(deadline)
                        .with_state(json!({ "records": records.len(), "claimed": true })),
                ));
            }
            (SyncMode::Batch, Some(resumed)) => {
                let payload = resumed.wakeup_payload();
                if let Some(error) = payload.get("error") {
                    let message = error["message"]
                        .as_str()
                        .unwrap_or("the batch failed")
                        .to_string();
                    return Err(if error["retryable"] == true {
                        NodeError::retryable(message)
                    } else {
                        NodeError::fatal(message)
                    });
                }
                let outcomes: Vec<Outcome> = payload
                    .get("outcomes")
                    .and_then(Value::as_array)
                    .map(|o| o.iter().filter_map(Outcome::from_json).collect())
                    .unwrap_or_default();
                if outcomes.len() != records.len() {
                    return Err(NodeError::retryable(format!(
                        "the batch answered {} outcomes for {} records",
                        outcomes.len(),
                        records.len()
                    )));
                }
                outcomes
            }
        };
        self.finish(
            items,
            refused_early,
            indices.into_iter().zip(outcomes).collect(),
        )
    }
}
