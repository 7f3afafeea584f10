//! Checks that each node type's config schema and the struct that reads
//! its configs accept and refuse the same configs, starting from the
//! example configs the schema documents.

use serde_json::{json, Value};

use crate::validate::{diagnose, IssueKind};
use crate::{NodeRegistry, WorkflowDefinition};

/// A field no config struct declares.
const UNKNOWN_FIELD: &str = "notAConfigField";

/// Checks every node type of `registry` against the example configs its
/// schema documents (the schema's own `examples`, written once on the
/// config struct with `#[schemars(example = ...)]`):
///
/// - each example passes publishing's checks in a one-node workflow;
/// - for variants of each example (a field no struct declares added, each
///   required field left out, each field given a value of another JSON
///   type), the schema and the config struct agree on whether the variant
///   is accepted. A type registered without a struct
///   ([`NodeRegistry::register`]) is held to half of that: what its schema
///   refuses, building refuses too.
///
/// Returns what disagreed, one line each, empty when all agree; a node
/// type whose schema documents no example is reported too.
///
/// ```
/// use concertmaster_core::{testing::check_config_examples, NodeDescriptor, NodeRegistry};
/// use concertmaster_core::node::NodeCategory;
/// # use concertmaster_core::{Node, NodeContext, NodeError, NodeOutcome, Ports};
/// # struct Tag;
/// # #[async_trait::async_trait]
/// # impl Node for Tag {
/// #     async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
/// #         Ok(input.into())
/// #     }
/// # }
///
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// #[serde(deny_unknown_fields)]
/// #[schemars(example = serde_json::json!({ "tag": "vip" }))]
/// struct TagConfig {
///     tag: String,
/// }
///
/// let mut registry = NodeRegistry::new();
/// registry
///     .register_with_config(NodeDescriptor::new("tag", NodeCategory::Transform), |_: TagConfig| Ok(Tag))
///     .unwrap();
/// assert_eq!(check_config_examples(&registry), Vec::<String>::new());
/// ```
pub fn check_config_examples(registry: &NodeRegistry) -> Vec<String> {
    let mut problems = Vec::new();
    for descriptor in registry.descriptors() {
        let type_id = descriptor.type_id.as_str();
        let examples = descriptor
            .config_schema
            .get("examples")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if examples.is_empty() {
            problems.push(format!("{type_id}: its config schema documents no example"));
        }
        for example in &examples {
            check_example(registry, type_id, example, &mut problems);
            for (change, variant) in variants(&descriptor.config_schema, example) {
                check_variant(registry, type_id, &change, &variant, &mut problems);
            }
        }
    }
    problems
}

fn check_example(
    registry: &NodeRegistry,
    type_id: &str,
    example: &Value,
    problems: &mut Vec<String>,
) {
    let workflow = WorkflowDefinition::from_value(json!({
        "id": "example", "name": "example",
        "nodes": [{ "id": "n", "type": type_id, "config": example }]
    }));
    match workflow {
        Ok(workflow) => {
            for issue in diagnose(&workflow, registry) {
                if issue.kind == IssueKind::InvalidConfig {
                    problems.push(format!(
                        "{type_id}: example {example} is refused at {}: {}",
                        issue.pointer.unwrap_or_default(),
                        issue.message
                    ));
                }
            }
        }
        Err(err) => problems.push(format!(
            "{type_id}: example {example} is no node config: {err}"
        )),
    }
}

fn check_variant(
    registry: &NodeRegistry,
    type_id: &str,
    change: &str,
    variant: &Value,
    problems: &mut Vec<String>,
) {
    let schema_accepts = registry
        .schema_errors(type_id, variant)
        .is_some_and(|errors| errors.is_empty());
    match registry.read(type_id, variant) {
        Some(read) if read.is_ok() != schema_accepts => problems.push(format!(
            "{type_id}: with {change}, the schema {} {variant} but the config struct {}",
            verdict(schema_accepts),
            match read {
                Ok(()) => "accepts it".to_string(),
                Err(err) => format!("refuses it at {}: {}", err.pointer, err.message),
            }
        )),
        Some(_) => {}
        None => {
            let builds = registry
                .build(type_id, variant)
                .is_some_and(|built| built.is_ok());
            if builds && !schema_accepts {
                problems.push(format!(
                    "{type_id}: with {change}, the schema refuses {variant} but the node builds from it"
                ));
            }
        }
    }
}

fn verdict(accepts: bool) -> &'static str {
    if accepts {
        "accepts"
    } else {
        "refuses"
    }
}

/// The variants of `example` checked, each with what was changed.
fn variants(schema: &Value, example: &Value) -> Vec<(String, Value)> {
    let Some(fields) = example.as_object() else {
        return Vec::new();
    };
    let mut variants = Vec::new();
    let mut unknown = fields.clone();
    unknown.insert(UNKNOWN_FIELD.into(), json!(true));
    variants.push((format!("`{UNKNOWN_FIELD}` added"), Value::Object(unknown)));
    let required = schema.get("required").and_then(Value::as_array);
    for name in required.into_iter().flatten().filter_map(Value::as_str) {
        let mut without = fields.clone();
        if without.remove(name).is_some() {
            variants.push((format!("`{name}` left out"), Value::Object(without)));
        }
    }
    for (name, value) in fields {
        let other = if value.is_string() {
            json!(12345)
        } else {
            json!("not-a-value")
        };
        let mut changed = fields.clone();
        changed.insert(name.clone(), other.clone());
        variants.push((format!("`{name}` set to {other}"), Value::Object(changed)));
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeCategory;
    use crate::{Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, Ports};

    struct Pass;

    #[async_trait::async_trait]
    impl Node for Pass {
        async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
            Ok(input.into())
        }
    }

    /// Its schema says a number where the struct reads a string.
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[schemars(example = json!({ "code": "A1" }))]
    #[allow(dead_code)]
    struct Drifted {
        #[schemars(with = "i64")]
        code: String,
    }

    #[test]
    fn a_schema_that_drifted_from_its_struct_is_reported() {
        let mut registry = NodeRegistry::new();
        registry
            .register_with_config(
                NodeDescriptor::new("drifted", NodeCategory::Logic),
                |_: Drifted| Ok(Pass),
            )
            .unwrap();
        // Written by hand: requires `id` to be a string, while the node
        // builds from anything.
        registry
            .register(
                NodeDescriptor::new("loose", NodeCategory::Logic).config_schema(json!({
                    "type": "object",
                    "properties": { "id": { "type": "string" } },
                    "examples": [{ "id": "x" }]
                })),
                |_: &Value| Ok(Pass),
            )
            .unwrap();
        registry
            .register(
                NodeDescriptor::new("bare", NodeCategory::Logic),
                |_: &Value| Ok(Pass),
            )
            .unwrap();
        let problems = check_config_examples(&registry).join("\n");
        assert!(
            problems.contains("drifted: example {\"code\":\"A1\"} is refused at /code"),
            "{problems}"
        );
        assert!(
            problems.contains("drifted: with `code` set to 12345, the schema accepts"),
            "{problems}"
        );
        assert!(
            problems.contains("loose: with `id` set to 12345, the schema refuses {\"id\":12345} but the node builds from it"),
            "{problems}"
        );
        assert!(
            problems.contains("bare: its config schema documents no example"),
            "{problems}"
        );
    }
}
