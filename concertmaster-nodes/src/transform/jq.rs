//! `jq`: reshapes items with a jq expression, per item or over all of them.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::expr::Expr;
use crate::support::{compile_at, expr_failed, item_value, value_item};

/// Config of a `jq` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"expression": "{name: .company.name, email: .contact.email}"}))]
struct JqConfig {
    /// The jq expression.
    #[schemars(
        length(min = 1, max = crate::expr::MAX_EXPRESSION_LEN),
        example = "{name: .company.name, email: .contact.email}"
    )]
    expression: String,
    /// Whether it runs on each item or once on all of them.
    #[serde(default)]
    mode: Mode,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Mode {
    /// The expression runs on each item; every value it gives is an item.
    #[default]
    EachItem,
    /// The expression runs once on the array of all items; an array it
    /// gives is spread into items, any other value is one item.
    AllItems,
}

struct Jq {
    expression: Expr,
    mode: Mode,
}

#[async_trait]
impl Node for Jq {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        let mut out = Vec::with_capacity(items.len());
        match self.mode {
            Mode::EachItem => {
                for (i, item) in items.into_iter().enumerate() {
                    let values = self
                        .expression
                        .eval(&item_value(&item))
                        .map_err(|err| expr_failed(i, &self.expression, err))?;
                    out.extend(values.into_iter().map(value_item));
                }
            }
            Mode::AllItems => {
                let all = Value::Array(items.into_iter().map(Value::Object).collect());
                let values = self.expression.eval(&all).map_err(|err| {
                    NodeError::fatal(err.to_string())
                        .with_details(json!({ "expression": self.expression.code() }))
                })?;
                for value in values {
                    match value {
                        Value::Array(values) => out.extend(values.into_iter().map(value_item)),
                        other => out.push(value_item(other)),
                    }
                }
            }
        }
        Ok(NodeOutcome::main(out))
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("jq", NodeCategory::Transform)
            .label("jq")
            .icon("braces")
            .description(
                "Reshapes items with a jq expression, on each item or once over all items. \
                 Objects become items; other values become `{\"value\": ...}`.",
            ),
        |config: JqConfig| -> Result<Jq, ConfigError> {
            Ok(Jq {
                expression: compile_at(&config.expression, "/expression")?,
                mode: config.mode,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run};
    use serde_json::json;

    #[tokio::test]
    async fn reshapes_each_item() {
        let detail = run(
            "jq",
            json!({"expression": "{name: .company.name, emails: [.contacts[].email]}"}),
            json!([{"company": {"name": "ACME"}, "contacts": [{"email": "a@acme.test"}]}]),
        )
        .await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({"name": "ACME", "emails": ["a@acme.test"]})]
        );
    }

    #[tokio::test]
    async fn each_item_may_become_several_or_none() {
        let detail = run(
            "jq",
            json!({"expression": ".lines[] | select(.qty > 0)"}),
            json!([{"lines": [{"qty": 1}, {"qty": 0}, {"qty": 2}]}]),
        )
        .await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({"qty": 1}), json!({"qty": 2})]
        );
    }

    #[tokio::test]
    async fn all_items_mode_aggregates() {
        let detail = run(
            "jq",
            json!({"expression": "{total: map(.amount) | add, count: length}", "mode": "allItems"}),
            json!([{"amount": 5}, {"amount": 7}]),
        )
        .await;
        assert_eq!(out(&detail, "main"), vec![json!({"total": 12, "count": 2})]);
    }

    #[tokio::test]
    async fn compile_errors_name_the_node_and_field_at_publish() {
        let message = publish_error("jq", json!({"expression": "{name: .a"})).await;
        assert!(message.contains("node n"), "{message}");
        assert!(message.contains("/expression"), "{message}");
        assert!(message.contains("does not compile"), "{message}");
    }
}
