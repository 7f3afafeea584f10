//! `if`: sends each item to `true` or `false` by a jq condition.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::Expr;
use crate::support::{compile_at, holds};

/// Config of an `if` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"condition": ".score >= 70"}))]
struct IfConfig {
    /// jq, evaluated on each item; truthy sends it to `true`.
    #[schemars(title = "Condition (jq)", length(min = 1), example = ".score >= 70")]
    condition: String,
}

struct If {
    condition: Expr,
}

#[async_trait]
impl Node for If {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let mut out = Ports::new();
        for (i, item) in input.take(MAIN_PORT).into_iter().enumerate() {
            let port = if holds(&self.condition, i, &item)? {
                "true"
            } else {
                "false"
            };
            out.push(port, item);
        }
        Ok(out.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("if", NodeCategory::Logic)
            .label("If")
            .icon("git-branch")
            .description(
                "Sends each item to `true` when the jq condition holds for it, else to `false`. \
                 A branch that receives no item is skipped.",
            )
            .outputs(["true", "false"]),
        |config: IfConfig| -> Result<If, ConfigError> {
            Ok(If {
                condition: compile_at(&config.condition, "/condition")?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run};
    use serde_json::json;

    #[tokio::test]
    async fn routes_each_item_by_its_condition() {
        let detail = run(
            "if",
            json!({"condition": ".score >= 70"}),
            json!([{"s": "a", "score": 90}, {"s": "b", "score": 10}, {"s": "c", "score": 70}]),
        )
        .await;
        let names = |port| {
            out(&detail, port)
                .iter()
                .map(|i| i["s"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("true"), vec![json!("a"), json!("c")]);
        assert_eq!(names("false"), vec![json!("b")]);
    }

    #[tokio::test]
    async fn a_condition_that_does_not_compile_is_refused_at_publish() {
        let message = publish_error("if", json!({"condition": ".score >="})).await;
        assert!(message.contains("node n"), "{message}");
        assert!(message.contains("/condition"), "{message}");
    }

    #[tokio::test]
    async fn a_condition_failing_on_an_item_fails_the_node_naming_the_item() {
        let detail = run(
            "if",
            json!({"condition": "(.score | tonumber) > 1"}),
            json!([{"score": "2"}, {"score": "many"}]),
        )
        .await;
        let error = detail.run.error.unwrap_or_default();
        assert!(error.contains("item 1"), "{error}");
    }
}
