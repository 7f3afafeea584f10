//! An export node's config: read, checked, and described as JSON Schema
//! for each connector's node.

use std::collections::BTreeMap;

use concertmaster_core::{
    connector::{config_schema, ExportNode, WriteMode},
    node::{read_config, ConfigError},
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub(super) const DEFAULT_BATCH_SIZE: usize = 100;
pub(super) const DEFAULT_FLUSH_SECONDS: u64 = 60;

/// Whether records go out with the run or are gathered across runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub(super) enum SyncMode {
    #[default]
    RealTime,
    Batch,
}

/// Whether a create may make a record twice when an attempt is repeated
/// after the ERP acted but its answer was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub(super) enum Duplicates {
    /// A create must be able to find what it may have made: `keyField` or
    /// `matchOn` (checked at publish).
    #[default]
    Refused,
    /// The workflow accepts a record created twice.
    Allowed,
}

/// A mapped field: a JSON pointer into the item, or a constant.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub(super) enum Source {
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
pub(super) struct ExportConfig {
    /// The connection records are written through.
    #[schemars(length(min = 1))]
    pub(super) connection: String,
    /// Where records go: an entity set, a record type.
    #[schemars(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$"))]
    pub(super) entity: String,
    /// ERP field -> JSON pointer into the item, or `{"value": constant}`;
    /// without it, the item's fields as they are.
    #[schemars(title = "Fields")]
    pub(super) mapping: Option<BTreeMap<String, Source>>,
    /// The ERP field holding the record's key: a repeated attempt
    /// updates what an earlier one created.
    #[schemars(title = "Key field")]
    pub(super) key_field: Option<String>,
    /// ERP fields that identify a record, looked up before a repeated
    /// create.
    #[schemars(
        title = "Match on",
        length(min = 1),
        inner(regex(pattern = "^[A-Za-z_][A-Za-z0-9_]{0,127}$")),
        extend("uniqueItems" = true)
    )]
    pub(super) match_on: Option<Vec<String>>,
    /// Whether a create without keyField or matchOn may make a record twice.
    #[serde(default)]
    pub(super) duplicates: Duplicates,
    /// Create, update or upsert.
    #[serde(default)]
    pub(super) mode: WriteMode,
    /// Write with the run, or gathered with other runs' records.
    #[serde(default)]
    pub(super) sync: SyncMode,
    /// `batch`: records per call.
    #[serde(default = "default_batch_size")]
    #[schemars(range(min = 1, max = 1000))]
    pub(super) batch_size: usize,
    /// `batch`: longest a record waits for its batch, in seconds.
    #[serde(default = "default_flush_seconds")]
    #[schemars(range(min = 1, max = 86_400))]
    pub(super) flush_interval_seconds: u64,
}

pub(super) fn default_batch_size() -> usize {
    DEFAULT_BATCH_SIZE
}

pub(super) fn default_flush_seconds() -> u64 {
    DEFAULT_FLUSH_SECONDS
}

/// An export node type: what its connector's factory describes, and the
/// kind of connection it writes through.
#[derive(Debug)]
pub(super) struct Flavour {
    pub(super) kind: String,
    pub(super) node: ExportNode,
}

impl Flavour {
    /// The config schema of this node type: [`ExportConfig`]'s, with the
    /// destination field named and titled as the connector says.
    pub(super) fn schema(&self) -> Value {
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
    pub(super) fn read(&self, config: &Value) -> Result<ExportConfig, ConfigError> {
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
pub(super) fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

pub(super) fn check(config: &ExportConfig, flavour: &Flavour) -> Result<(), ConfigError> {
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
