//! `validate`: checks each item against a JSON Schema; passing items go to
//! `valid`, failing ones to `invalid` with every field error attached.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    validate::SchemaValidator,
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::support::item_value;

/// Config of a `validate` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"schema": {"type": "object", "required": ["vatId"]}, "errorsField": "validationErrors"}))]
struct ValidateConfig {
    /// The JSON Schema items must satisfy.
    schema: Map<String, Value>,
    /// The field failing items carry their errors in.
    #[serde(default = "default_errors_field")]
    #[schemars(length(min = 1))]
    errors_field: String,
}

fn default_errors_field() -> String {
    "validationErrors".into()
}

struct Validate {
    schema: SchemaValidator,
    errors_field: String,
}

#[async_trait]
impl Node for Validate {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let mut out = Ports::new();
        for mut item in input.take(MAIN_PORT) {
            let errors = self.schema.check(&item_value(&item));
            if errors.is_empty() {
                out.push("valid", item);
            } else {
                let errors = serde_json::to_value(errors).unwrap_or(Value::Null);
                item.insert(self.errors_field.clone(), errors);
                out.push("invalid", item);
            }
        }
        Ok(out.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("validate", NodeCategory::Transform)
            .label("Validate")
            .icon("check-circle")
            .description(
                "Checks each item against a JSON Schema: passing items go to `valid`; failing \
                 ones go to `invalid`, carrying every field error (JSON pointer and message).",
            )
            .outputs(["valid", "invalid"]),
        |config: ValidateConfig| -> Result<Validate, ConfigError> {
            let schema = SchemaValidator::new(&Value::Object(config.schema))
                .map_err(|message| ConfigError::new(message).at("/schema"))?;
            Ok(Validate {
                schema,
                errors_field: config.errors_field,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run};
    use serde_json::json;

    #[tokio::test]
    async fn splits_items_and_lists_every_field_error() {
        let schema = json!({
            "type": "object",
            "properties": {
                "vatId": { "type": "string", "pattern": "^DE[0-9]{9}$" },
                "email": { "type": "string", "format": "email" }
            },
            "required": ["vatId", "email"]
        });
        let detail = run(
            "validate",
            json!({"schema": schema}),
            json!([
                {"vatId": "DE123456789", "email": "ap@acme.test"},
                {"vatId": "FR1", "email": "not-an-email"}
            ]),
        )
        .await;
        assert_eq!(out(&detail, "valid").len(), 1);
        let invalid = out(&detail, "invalid");
        let mut pointers: Vec<_> = invalid[0]["validationErrors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap().to_string())
            .collect();
        pointers.sort();
        assert_eq!(pointers, vec!["/email", "/vatId"]);
    }

    #[tokio::test]
    async fn an_invalid_schema_is_refused_at_publish() {
        let message = publish_error("validate", json!({"schema": {"type": "nonsense"}})).await;
        assert!(message.contains("/schema"), "{message}");
    }
}
