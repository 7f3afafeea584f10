//! `map_fields`: builds each output item field by field from a declarative
//! mapping: copy from a path, compute with jq, or set a constant; convert,
//! default, require.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, Join, NodeCategory, RegistryError, MAIN_PORT},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::expr::{Expr, ExprError};
use crate::support::{check_pointer, compile_at, get_pointer, item_value, set_pointer};

/// Config of a `map_fields` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"mappings": [{"to": "/BusinessPartnerName", "from": "/company/name", "convert": "trim"}, {"to": "/Country", "value": "DE"}]}))]
struct MapFieldsConfig {
    /// The output fields, each with where its value comes from.
    #[schemars(length(min = 1))]
    mappings: Vec<MappingConfig>,
    /// Start each output item from a copy of the input item.
    #[serde(default)]
    keep_unmapped: bool,
    /// Map items as the node before sends them, while it runs, rather than
    /// once it finished; the node then has exactly one incoming edge.
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = concertmaster_core::node::declared_order::<Self>)]
struct MappingConfig {
    /// Where the value goes in the output item (JSON pointer).
    #[schemars(example = "/BusinessPartnerName")]
    to: String,
    /// Copy from this JSON pointer in the input item.
    #[schemars(example = "/company/name")]
    from: Option<String>,
    /// Compute with this jq expression on the input item.
    expression: Option<String>,
    /// Set this constant.
    value: Option<Value>,
    /// Convert the value on the way.
    convert: Option<Convert>,
    /// Used when the source is missing or null.
    default: Option<Value>,
    /// Fail the item when the source is missing or null and no default.
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
enum Convert {
    String,
    Number,
    Integer,
    Boolean,
    Trim,
    Lowercase,
    Uppercase,
}

enum Source {
    Path(String),
    Expr(Expr),
    Value(Value),
}

struct Mapping {
    to: String,
    source: Source,
    convert: Option<Convert>,
    default: Option<Value>,
    required: bool,
}

struct MapFields {
    mappings: Vec<Mapping>,
    keep_unmapped: bool,
    stream: bool,
}

fn convert(value: Value, how: Convert) -> Result<Value, String> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match how {
        Convert::String => Value::String(text(&value)),
        Convert::Trim => Value::String(text(&value).trim().to_string()),
        Convert::Lowercase => Value::String(text(&value).to_lowercase()),
        Convert::Uppercase => Value::String(text(&value).to_uppercase()),
        Convert::Number | Convert::Integer => {
            let number = match &value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().replace(',', ".").parse::<f64>().ok(),
                _ => None,
            }
            .ok_or_else(|| format!("{value} is not a number"))?;
            if matches!(how, Convert::Integer) {
                if number.fract() != 0.0 {
                    return Err(format!("{value} is not a whole number"));
                }
                json!(number as i64)
            } else {
                serde_json::Number::from_f64(number)
                    .map(Value::Number)
                    .ok_or_else(|| format!("{value} is not a finite number"))?
            }
        }
        Convert::Boolean => match &value {
            Value::Bool(b) => Value::Bool(*b),
            Value::String(s) => match s.trim().to_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "ja" | "x" => Value::Bool(true),
                "false" | "no" | "n" | "0" | "nein" | "" => Value::Bool(false),
                _ => return Err(format!("{value} is not a yes/no value")),
            },
            Value::Number(n) => Value::Bool(n.as_f64() != Some(0.0)),
            _ => return Err(format!("{value} is not a yes/no value")),
        },
    })
}

impl MapFields {
    fn map(&self, item: &Item) -> Result<Item, Vec<String>> {
        let mut out = if self.keep_unmapped {
            item.clone()
        } else {
            Item::new()
        };
        let whole = item_value(item);
        let mut problems = Vec::new();
        for mapping in &self.mappings {
            let found = match &mapping.source {
                Source::Path(path) => get_pointer(item, path).cloned(),
                Source::Value(value) => Some(value.clone()),
                Source::Expr(expr) => match expr.eval_one(&whole) {
                    Ok(value) => Some(value),
                    Err(ExprError::NoOutput) => None,
                    Err(err) => {
                        problems.push(format!("{}: {err}", mapping.to));
                        continue;
                    }
                },
            };
            let value = match found.filter(|v| !v.is_null()) {
                Some(value) => match mapping.convert.map(|how| convert(value.clone(), how)) {
                    None => value,
                    Some(Ok(converted)) => converted,
                    Some(Err(why)) => {
                        problems.push(format!("{}: {why}", mapping.to));
                        continue;
                    }
                },
                None => match (&mapping.default, mapping.required) {
                    (Some(default), _) => default.clone(),
                    (None, true) => {
                        problems.push(format!("{}: required, but the source is empty", mapping.to));
                        continue;
                    }
                    (None, false) => continue,
                },
            };
            set_pointer(&mut out, &mapping.to, value);
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// Maps item `i`, failing the node with every problem it has.
    fn map_at(&self, i: usize, item: &Item) -> Result<Item, NodeError> {
        self.map(item).map_err(|problems| {
            NodeError::fatal(format!("item {i}: {}", problems.join("; ")))
                .with_details(json!({ "item": i, "fields": problems }))
        })
    }
}

#[async_trait]
impl Node for MapFields {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        if self.stream {
            let mut i = 0;
            while let Some(item) = ctx.next_item().await? {
                ctx.emit(MAIN_PORT, self.map_at(i, &item)?).await?;
                i += 1;
            }
            return Ok(NodeOutcome::main(Vec::new()));
        }
        let items = input.take(MAIN_PORT);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            out.push(self.map_at(i, item)?);
        }
        Ok(NodeOutcome::main(out))
    }

    fn join(&self) -> Join {
        if self.stream {
            Join::Stream
        } else {
            Join::All
        }
    }
}

fn build(config: MapFieldsConfig) -> Result<MapFields, ConfigError> {
    let mut mappings = Vec::with_capacity(config.mappings.len());
    for (i, m) in config.mappings.into_iter().enumerate() {
        let at = |field: &str| format!("/mappings/{i}/{field}");
        check_pointer(&m.to, &at("to"))?;
        let source =
            match (m.from, m.expression, m.value) {
                (Some(from), None, None) => {
                    check_pointer(&from, &at("from"))?;
                    Source::Path(from)
                }
                (None, Some(expression), None) => {
                    Source::Expr(compile_at(&expression, &at("expression"))?)
                }
                (None, None, Some(value)) => Source::Value(value),
                _ => return Err(ConfigError::new(
                    "give exactly one of `from` (a JSON pointer), `expression` (jq) and `value`",
                )
                .at(format!("/mappings/{i}"))),
            };
        mappings.push(Mapping {
            to: m.to,
            source,
            convert: m.convert,
            default: m.default,
            required: m.required,
        });
    }
    Ok(MapFields {
        mappings,
        keep_unmapped: config.keep_unmapped,
        stream: config.stream,
    })
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("map_fields", NodeCategory::Transform)
            .streams_input_when("/stream")
            .label("Map fields")
            .icon("arrow-right-left")
            .description(
                "Builds each item field by field: copy from a JSON pointer, compute with jq or \
                 set a constant; convert, default and require. An item missing a required \
                 field fails the node, naming the item and every field. With `stream`, it \
                 maps items one at a time as the node before sends them (one incoming edge).",
            ),
        build,
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run, run_streamed};
    use serde_json::json;

    #[tokio::test]
    async fn maps_converts_defaults_and_computes() {
        let config = json!({"mappings": [
            {"to": "/BusinessPartnerName", "from": "/company/name", "convert": "trim", "required": true},
            {"to": "/Address/Country", "from": "/company/country", "convert": "uppercase", "default": "DE"},
            {"to": "/Employees", "from": "/size", "convert": "integer"},
            {"to": "/Contacts", "expression": "[.contacts[].email]"},
            {"to": "/Source", "value": "portal"},
            {"to": "/Fax", "from": "/fax"}
        ]});
        let detail = run(
            "map_fields",
            config,
            json!([{"company": {"name": "  ACME GmbH "}, "size": "250", "contacts": [{"email": "a@acme.test"}]}]),
        )
        .await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({
                "BusinessPartnerName": "ACME GmbH",
                "Address": {"Country": "DE"},
                "Employees": 250,
                "Contacts": ["a@acme.test"],
                "Source": "portal"
            })]
        );
    }

    #[tokio::test]
    async fn streamed_items_are_mapped_one_at_a_time() {
        let config = json!({"stream": true, "mappings": [
            {"to": "/Name", "from": "/name", "convert": "uppercase", "required": true}
        ]});
        let detail =
            run_streamed("map_fields", config, json!([{"name": "a"}, {"name": "b"}])).await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({"Name": "A"}), json!({"Name": "B"})]
        );

        let config = json!({"stream": true, "mappings": [{"to": "/Name", "from": "/name", "required": true}]});
        let detail = run_streamed("map_fields", config, json!([{"name": "a"}, {"other": 1}])).await;
        let error = detail.run.error.unwrap_or_default();
        assert!(error.contains("item 1: /Name: required"), "{error}");
    }

    #[tokio::test]
    async fn missing_required_fields_fail_naming_item_and_fields() {
        let config = json!({"mappings": [
            {"to": "/Name", "from": "/name", "required": true},
            {"to": "/Size", "from": "/size", "convert": "number"}
        ]});
        let detail = run(
            "map_fields",
            config,
            json!([{"name": "ok", "size": 1}, {"size": "many"}]),
        )
        .await;
        let error = detail.run.error.unwrap_or_default();
        assert!(error.contains("item 1"), "{error}");
        assert!(error.contains("/Name: required"), "{error}");
        assert!(error.contains("/Size: \"many\" is not a number"), "{error}");
    }

    #[tokio::test]
    async fn ambiguous_mappings_are_refused_at_publish() {
        let config = json!({"mappings": [{"to": "/a", "from": "/b", "value": 1}]});
        let message = publish_error("map_fields", config).await;
        assert!(message.contains("/mappings/0"), "{message}");
        let config = json!({"mappings": [{"to": "a", "from": "/b"}]});
        let message = publish_error("map_fields", config).await;
        assert!(message.contains("/mappings/0/to"), "{message}");
    }
}
