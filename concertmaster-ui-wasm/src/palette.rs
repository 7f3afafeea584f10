//! The node palette: the node types a host registered, grouped by
//! category, each with its config schema and a default config.

use concertmaster_core::{
    node::{Join, NodeCategory, PortSpec, RegistryError, ORDER_KEYWORD},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// One node type as the palette shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaletteEntry {
    /// The type id a node of it carries (`send_form`).
    pub type_id: String,
    /// Display name.
    pub label: String,
    /// Icon name.
    pub icon: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of its config, for the config panel.
    pub config_schema: Value,
    /// The config a new node starts with: the schema's defaults.
    pub default_config: Value,
    /// The config form's UI schema (react-jsonschema-form's `uiSchema`):
    /// each object's fields in the order the config struct declares them
    /// (`ui:order`, from the schema's `x-order`).
    pub config_ui: Value,
    /// Its input ports (handles on the left).
    pub inputs: Vec<PortSpec>,
    /// Its output ports (handles on the right).
    pub outputs: Vec<PortSpec>,
}

/// The node types of one category.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PaletteGroup {
    /// The category.
    pub category: NodeCategory,
    /// Its display name.
    pub label: String,
    /// Its node types, by label.
    pub entries: Vec<PaletteEntry>,
}

/// Stands for a node type in the editor, where nothing runs: publishing
/// checks configs with the same registry, built from descriptors only.
/// Its output ports are those its config names, and it streams its input
/// when its config says so, by the descriptor's rules.
struct Drawn {
    outputs: Option<Vec<String>>,
    streams: bool,
}

#[async_trait::async_trait]
impl Node for Drawn {
    fn output_ports(&self) -> Option<Vec<String>> {
        self.outputs.clone()
    }

    fn join(&self) -> Join {
        if self.streams {
            Join::Stream
        } else {
            Join::All
        }
    }

    async fn execute(&self, ctx: &NodeContext, _input: Ports) -> Result<NodeOutcome, NodeError> {
        Err(NodeError::fatal(format!(
            "node {} ({}) comes from the editor's palette and cannot run; publish to an engine that registered it",
            ctx.node_id(),
            ctx.node_type()
        )))
    }
}

/// The palette and the registry validation uses, built from the
/// descriptors a host exported (`registry.descriptors()` as JSON).
pub(crate) fn registry(descriptors: &[NodeDescriptor]) -> Result<NodeRegistry, RegistryError> {
    let mut registry = NodeRegistry::new();
    for descriptor in descriptors {
        let rule = descriptor.clone();
        registry.register(descriptor.clone(), move |config: &Value| {
            Ok(Drawn {
                outputs: rule
                    .output_ports_from
                    .is_some()
                    .then(|| rule.output_ports_for(config)),
                streams: rule.streams_input_for(config),
            })
        })?;
    }
    Ok(registry)
}

/// The palette's groups, in category order.
pub(crate) fn groups(registry: &NodeRegistry) -> Vec<PaletteGroup> {
    let categories = [
        (NodeCategory::Trigger, "Triggers"),
        (NodeCategory::Collection, "Collection"),
        (NodeCategory::Transform, "Transform"),
        (NodeCategory::Logic, "Logic"),
        (NodeCategory::Output, "Output"),
    ];
    categories
        .into_iter()
        .filter_map(|(category, label)| {
            let mut entries: Vec<PaletteEntry> =
                registry.descriptors_in(category).map(entry).collect();
            entries.sort_by(|a, b| a.label.cmp(&b.label));
            (!entries.is_empty()).then(|| PaletteGroup {
                category,
                label: label.to_string(),
                entries,
            })
        })
        .collect()
}

pub(crate) fn entry(descriptor: &NodeDescriptor) -> PaletteEntry {
    PaletteEntry {
        type_id: descriptor.type_id.clone(),
        label: descriptor.label.clone(),
        icon: descriptor.icon.clone(),
        description: descriptor.description.clone(),
        config_schema: descriptor.config_schema.clone(),
        default_config: defaults(&descriptor.config_schema)
            .unwrap_or_else(|| Value::Object(Map::new())),
        config_ui: ui_schema(&descriptor.config_schema),
        inputs: descriptor.inputs.clone(),
        outputs: descriptor.outputs.clone(),
    }
}

/// The UI schema that draws `schema`'s fields in declared order: a
/// `ui:order` for every object that lists one under `x-order`, nested
/// under its property's name, or under `items` for a list's elements.
fn ui_schema(schema: &Value) -> Value {
    let mut ui = Map::new();
    if let Some(order) = schema.get(ORDER_KEYWORD).and_then(Value::as_array) {
        let mut order = order.clone();
        // Fields the list does not name (a host's own) come after.
        order.push(Value::from("*"));
        ui.insert("ui:order".into(), Value::Array(order));
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let nested = ui_schema(property);
            if nested.as_object().is_some_and(|n| !n.is_empty()) {
                ui.insert(name.clone(), nested);
            }
        }
    }
    if let Some(items) = schema.get("items") {
        let nested = ui_schema(items);
        if nested.as_object().is_some_and(|n| !n.is_empty()) {
            ui.insert("items".into(), nested);
        }
    }
    Value::Object(ui)
}

/// The value `schema` describes by its defaults: its own `default`, or for
/// an object, the defaults of its properties.
fn defaults(schema: &Value) -> Option<Value> {
    if let Some(default) = schema.get("default") {
        return Some(default.clone());
    }
    let properties = schema.get("properties")?.as_object()?;
    let mut object = Map::new();
    for (name, property) in properties {
        let is_object = property.get("type").and_then(Value::as_str) == Some("object");
        match defaults(property) {
            Some(Value::Object(map))
                if is_object && map.is_empty() && property.get("default").is_none() => {}
            Some(value) => {
                object.insert(name.clone(), value);
            }
            None => {}
        }
    }
    Some(Value::Object(object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_come_from_the_schema() {
        let schema = json!({
            "type": "object",
            "required": ["connection"],
            "properties": {
                "connection": { "type": "string" },
                "mode": { "type": "string", "default": "create" },
                "batchSize": { "type": "integer", "default": 100 },
                "mapping": { "type": "object" },
                "retry": { "type": "object", "properties": { "attempts": { "type": "integer", "default": 3 } } }
            }
        });
        assert_eq!(
            defaults(&schema).unwrap(),
            json!({ "mode": "create", "batchSize": 100, "retry": { "attempts": 3 } })
        );
        assert_eq!(defaults(&json!({ "type": "object" })), None);
    }

    #[test]
    fn the_config_form_draws_fields_in_declared_order() {
        let schema = json!({
            "type": "object",
            "x-order": ["cases", "mode"],
            "properties": {
                "mode": { "type": "string" },
                "cases": {
                    "type": "array",
                    "items": { "type": "object", "x-order": ["port", "condition"], "properties": {} }
                }
            }
        });
        assert_eq!(
            ui_schema(&schema),
            json!({
                "ui:order": ["cases", "mode", "*"],
                "cases": { "items": { "ui:order": ["port", "condition", "*"] } }
            })
        );
        assert_eq!(ui_schema(&json!({ "type": "object" })), json!({}));
    }

    #[test]
    fn groups_follow_the_category_order_and_hold_every_type() {
        let descriptors = vec![
            NodeDescriptor::new("sap_export", NodeCategory::Output).label("SAP export"),
            NodeDescriptor::new("schedule", NodeCategory::Trigger).label("Schedule"),
            NodeDescriptor::new("jq", NodeCategory::Transform).label("jq"),
        ];
        let registry = registry(&descriptors).unwrap();
        let groups = groups(&registry);
        let names: Vec<_> = groups.iter().map(|g| g.label.as_str()).collect();
        assert_eq!(names, ["Triggers", "Transform", "Output"]);
        assert_eq!(groups[2].entries[0].type_id, "sap_export");
        assert_eq!(groups[0].entries[0].default_config, json!({}));
    }
}
