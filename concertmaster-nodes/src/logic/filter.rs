//! `filter`: keeps the items a jq condition holds for; the rest go to
//! `discarded`.

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, Join, NodeCategory, RegistryError, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::expr::Expr;
use crate::support::{compile_at, holds};

/// Config of a `filter` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"condition": ".country == \"DE\""}))]
struct FilterConfig {
    /// jq, evaluated on each item; truthy keeps it.
    #[schemars(
        title = "Keep when (jq)",
        length(min = 1),
        example = ".country == \"DE\""
    )]
    condition: String,
    /// Filter items as the node before sends them, while it runs, rather
    /// than once it finished; the node then has exactly one incoming edge.
    #[serde(default)]
    stream: bool,
}

struct Filter {
    condition: Expr,
    stream: bool,
}

#[async_trait]
impl Node for Filter {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        if self.stream {
            let mut i = 0;
            while let Some(item) = ctx.next_item().await? {
                let port = if holds(&self.condition, i, &item)? {
                    MAIN_PORT
                } else {
                    "discarded"
                };
                ctx.emit(port, item).await?;
                i += 1;
            }
            return Ok(NodeOutcome::main(Vec::new()));
        }
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

    fn join(&self) -> Join {
        if self.stream {
            Join::Stream
        } else {
            Join::All
        }
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("filter", NodeCategory::Logic)
            .streams_input_when("/stream")
            .label("Filter")
            .icon("filter")
            .description(
                "Keeps the items for which the jq condition holds on `main` (also when none \
                 is left); the others go to `discarded`. With `stream`, it filters items one \
                 at a time as the node before sends them (one incoming edge).",
            )
            .outputs(["main", "discarded"]),
        |config: FilterConfig| -> Result<Filter, ConfigError> {
            Ok(Filter {
                condition: compile_at(&config.condition, "/condition")?,
                stream: config.stream,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, run, run_streamed};
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
    async fn streamed_items_are_kept_or_discarded_one_at_a_time() {
        let detail = run_streamed(
            "filter",
            json!({"condition": ".id > 1", "stream": true}),
            json!([{"id": 1}, {"id": 2}, {"id": 3}]),
        )
        .await;
        assert_eq!(
            out(&detail, "main"),
            vec![json!({"id": 2}), json!({"id": 3})]
        );
        assert_eq!(out(&detail, "discarded"), vec![json!({"id": 1})]);
    }

    #[tokio::test]
    async fn filtering_everything_out_still_continues_on_main() {
        let detail = run("filter", json!({"condition": "false"}), json!([{"id": 1}])).await;
        assert!(detail.output("n").unwrap().is_taken("main"));
        assert!(out(&detail, "main").is_empty());
    }
}
