//! `filter`: keeps the items a jq condition holds for; the rest go to
//! `discarded`.

use async_trait::async_trait;
use concertmaster_core::{
    ConfigError, Node, NodeCategory, NodeContext, NodeDescriptor, NodeError, NodeOutcome,
    NodeRegistry, Ports, RegistryError, MAIN_PORT,
};
use serde::Deserialize;
use serde_json::json;

use crate::expr::Expr;
use crate::support::{compile_at, holds};

/// Config of a `filter` node.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FilterConfig {
    /// jq, evaluated on each item; truthy keeps it.
    condition: String,
}

struct Filter {
    condition: Expr,
}

#[async_trait]
impl Node for Filter {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let mut kept = Vec::new();
        let mut discarded = Vec::new();
        for (i, item) in input.take(MAIN_PORT).into_iter().enumerate() {
            if holds(&self.condition, i, &item)? {
                kept.push(item);
            } else {
                discarded.push(item);
            }
        }
        // `main` always goes on, also empty: filtering everything out is an
        // answer, not a reason to skip what follows.
        let mut out = Ports::main(kept);
        if !discarded.is_empty() {
            out.extend("discarded", discarded);
        }
        Ok(out.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("filter", NodeCategory::Logic)
            .label("Filter")
            .icon("filter")
            .description(
                "Keeps the items for which the jq condition holds on `main` (also when none \
                 is left); the others go to `discarded`.",
            )
            .outputs(["main", "discarded"])
            .config_schema(json!({
                "type": "object",
                "properties": {
                    "condition": {
                        "type": "string", "minLength": 1,
                        "title": "Keep when (jq)", "examples": [".country == \"DE\""]
                    }
                },
                "required": ["condition"],
                "additionalProperties": false
            })),
        |config: FilterConfig| -> Result<Filter, ConfigError> {
            Ok(Filter {
                condition: compile_at(&config.condition, "/condition")?,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, run};
    use serde_json::json;

    #[tokio::test]
    async fn keeps_matching_items_and_discards_the_rest() {
        let detail = run(
            "filter",
            json!({"condition": ".country == \"DE\""}),
            json!([{"id": 1, "country": "DE"}, {"id": 2, "country": "FR"}]),
        )
        .await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({"id": 1, "country": "DE"})]
        );
        assert_eq!(
            out(&detail, "discarded"),
            vec![json!({"id": 2, "country": "FR"})]
        );
    }

    #[tokio::test]
    async fn filtering_everything_out_still_continues_on_main() {
        let detail = run("filter", json!({"condition": "false"}), json!([{"id": 1}])).await;
        assert!(detail.output("n").unwrap().is_taken("main"));
        assert!(out(&detail, "main").is_empty());
    }
}
