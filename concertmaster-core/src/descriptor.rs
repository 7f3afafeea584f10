//! What the editor and the validator know about a node type.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::item::MAIN_PORT;

/// The palette group a node type belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum NodeCategory {
    /// Starts runs: schedules, form submissions, webhooks. Has no inputs.
    Trigger,
    /// Sends forms and waits for people.
    Collection,
    /// Reshapes and checks data.
    Transform,
    /// Routes, filters, joins, delays.
    Logic,
    /// Delivers data to other systems.
    Output,
}

impl NodeCategory {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Collection => "collection",
            Self::Transform => "transform",
            Self::Logic => "logic",
            Self::Output => "output",
        }
    }
}

/// A named input or output of a node type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortSpec {
    /// The name edges use (`sourcePort` / `targetPort`).
    pub name: String,
    /// A label for the editor; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

impl PortSpec {
    /// A port called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            label: None,
        }
    }

    /// Sets the label.
    pub fn labelled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

impl From<&str> for PortSpec {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

/// Everything the editor palette and the validator need about a node type.
///
/// ```
/// use concertmaster_core::{NodeDescriptor, node::NodeCategory};
/// use serde_json::json;
///
/// let descriptor = NodeDescriptor::new("acme.credit_check", NodeCategory::Logic)
///     .label("Credit check")
///     .icon("shield")
///     .description("Routes suppliers by their credit score")
///     .outputs(["pass", "fail"])
///     .config_schema(json!({
///         "type": "object",
///         "properties": { "minScore": { "type": "integer", "minimum": 0 } },
///         "required": ["minScore"]
///     }));
/// assert_eq!(descriptor.inputs[0].name, "main");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeDescriptor {
    /// The id workflows use in `type`, e.g. `send_form` or `acme.geocode`.
    pub type_id: String,
    /// The palette group.
    pub category: NodeCategory,
    /// Name shown in the palette.
    pub label: String,
    /// Icon name for the palette.
    pub icon: String,
    /// One or two sentences on what the node does.
    pub description: String,
    /// JSON Schema every node config of this type must satisfy.
    pub config_schema: Value,
    /// Input ports; none for triggers.
    pub inputs: Vec<PortSpec>,
    /// Output ports, besides the implicit `error` port every node has.
    pub outputs: Vec<PortSpec>,
    /// Where a node's config names further output ports: a JSON pointer in
    /// which `*` stands for every element (`/cases/*/port` for a switch).
    /// Editors draw those handles from it, without the node's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_ports_from: Option<String>,
    /// When a node of this type streams its input
    /// ([`Join::Stream`](crate::node::Join::Stream)): always (`""`), or when its
    /// config holds `true` at this JSON pointer (`/stream`). Editors check
    /// a streaming node's one incoming edge from it, and may draw that
    /// edge as a stream, without the node's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams_input_when: Option<String>,
    /// Whether a node of this type acts on the world outside the run (an
    /// ERP write, an HTTP call, an e-mail, a dataset row). The engine
    /// commits such a node's `running` record before it executes, so that
    /// an execution cut short by a crash is known when the node runs again
    /// ([`NodeContext::may_be_repeat`](crate::NodeContext::may_be_repeat)),
    /// and commits the steps before it first. A node without side effects
    /// that ends without waiting is committed with its run's next write,
    /// not on its own: after a crash it may run again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub side_effects: bool,
}

impl NodeDescriptor {
    /// A descriptor with the category's usual ports: triggers have no input
    /// and a `main` output, every other category one `main` of each. The
    /// config schema accepts any object until one is set.
    pub fn new(type_id: impl Into<String>, category: NodeCategory) -> Self {
        let type_id = type_id.into();
        let inputs = if category == NodeCategory::Trigger {
            Vec::new()
        } else {
            vec![PortSpec::new(MAIN_PORT)]
        };
        Self {
            label: type_id.clone(),
            type_id,
            category,
            icon: default_icon(category).to_string(),
            description: String::new(),
            config_schema: serde_json::json!({ "type": "object" }),
            inputs,
            outputs: vec![PortSpec::new(MAIN_PORT)],
            output_ports_from: None,
            streams_input_when: None,
            side_effects: false,
        }
    }

    /// Says that a node of this type acts on the world outside the run, so
    /// that the engine records each execution as started before it runs
    /// (see [`side_effects`](Self#structfield.side_effects)).
    pub fn with_side_effects(mut self) -> Self {
        self.side_effects = true;
        self
    }

    /// Says that a node of this type streams its input when its config
    /// holds `true` at `pointer` (`""` for always): what its
    /// [`Node::join`](crate::Node::join) answers, for editors.
    pub fn streams_input_when(mut self, pointer: impl Into<String>) -> Self {
        self.streams_input_when = Some(pointer.into());
        self
    }

    /// Whether a node of this type with `config` streams its input, as the
    /// descriptor says ([`streams_input_when`](Self::streams_input_when)).
    pub fn streams_input_for(&self, config: &Value) -> bool {
        match self.streams_input_when.as_deref() {
            None => false,
            Some("") => true,
            Some(pointer) => config.pointer(pointer) == Some(&Value::Bool(true)),
        }
    }

    /// Takes further output ports from the config at `pattern`, a JSON
    /// pointer in which `*` stands for every array element or object value.
    pub fn output_ports_from(mut self, pattern: impl Into<String>) -> Self {
        self.output_ports_from = Some(pattern.into());
        self
    }

    /// The output ports a node of this type with `config` has (besides
    /// `error`): those its config names, then the fixed ones.
    pub fn output_ports_for(&self, config: &Value) -> Vec<String> {
        let mut ports: Vec<String> = Vec::new();
        if let Some(pattern) = &self.output_ports_from {
            let mut found = Vec::new();
            collect_at(
                config,
                pattern.split('/').skip(1).collect::<Vec<_>>().as_slice(),
                &mut found,
            );
            for port in found {
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
        }
        for port in &self.outputs {
            if !ports.contains(&port.name) {
                ports.push(port.name.clone());
            }
        }
        ports
    }

    /// Sets the palette label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the icon name.
    pub fn icon(mut self, icon: impl Into<String>) -> Self {
        self.icon = icon.into();
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the config JSON Schema, for a node type registered with
    /// [`NodeRegistry::register`](crate::NodeRegistry::register).
    /// [`NodeRegistry::register_with_config`](crate::NodeRegistry::register_with_config)
    /// derives it from the config struct instead.
    pub fn config_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// Replaces the input ports.
    pub fn inputs<P: Into<PortSpec>>(mut self, ports: impl IntoIterator<Item = P>) -> Self {
        self.inputs = ports.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the output ports.
    pub fn outputs<P: Into<PortSpec>>(mut self, ports: impl IntoIterator<Item = P>) -> Self {
        self.outputs = ports.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `name` is one of the input ports.
    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|p| p.name == name)
    }
}

/// The strings in `value` at `path` (pointer segments, `*` for every
/// element).
fn collect_at(value: &Value, path: &[&str], out: &mut Vec<String>) {
    let Some((first, rest)) = path.split_first() else {
        if let Some(text) = value.as_str() {
            out.push(text.to_string());
        }
        return;
    };
    let segment = first.replace("~1", "/").replace("~0", "~");
    match (value, segment.as_str()) {
        (Value::Array(items), "*") => items.iter().for_each(|item| collect_at(item, rest, out)),
        (Value::Object(map), "*") => map.values().for_each(|item| collect_at(item, rest, out)),
        (Value::Array(items), index) => {
            if let Some(item) = index.parse::<usize>().ok().and_then(|i| items.get(i)) {
                collect_at(item, rest, out);
            }
        }
        (Value::Object(map), key) => {
            if let Some(item) = map.get(key) {
                collect_at(item, rest, out);
            }
        }
        _ => {}
    }
}

fn default_icon(category: NodeCategory) -> &'static str {
    match category {
        NodeCategory::Trigger => "play",
        NodeCategory::Collection => "clipboard",
        NodeCategory::Transform => "shuffle",
        NodeCategory::Logic => "git-branch",
        NodeCategory::Output => "upload",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_ports_come_from_the_config_then_the_fixed_ones() {
        let switch = NodeDescriptor::new("switch", NodeCategory::Logic)
            .outputs(["default"])
            .output_ports_from("/cases/*/port");
        let config = serde_json::json!({ "cases": [{ "port": "de" }, { "port": "ch" }, { "port": "de" }, { "when": 1 }] });
        assert_eq!(switch.output_ports_for(&config), ["de", "ch", "default"]);
        assert_eq!(switch.output_ports_for(&serde_json::json!({})), ["default"]);
        let plain = NodeDescriptor::new("jq", NodeCategory::Transform);
        assert_eq!(plain.output_ports_for(&config), ["main"]);
    }

    #[test]
    fn whether_a_node_streams_its_input_comes_from_its_config() {
        let map = NodeDescriptor::new("map", NodeCategory::Transform).streams_input_when("/stream");
        assert!(map.streams_input_for(&serde_json::json!({ "stream": true })));
        assert!(!map.streams_input_for(&serde_json::json!({ "stream": "yes" })));
        assert!(!map.streams_input_for(&serde_json::json!({})));
        let always = NodeDescriptor::new("load", NodeCategory::Output).streams_input_when("");
        assert!(always.streams_input_for(&serde_json::json!({})));
        let plain = NodeDescriptor::new("jq", NodeCategory::Transform);
        assert!(!plain.streams_input_for(&serde_json::json!({ "stream": true })));
    }
}
