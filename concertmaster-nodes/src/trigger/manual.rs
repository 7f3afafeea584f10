//! `manual` and `webhook`: runs started by the host (a button, an API call,
//! an HTTP request it received) with the items it passes to `Engine::start`.

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, RegistryError},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use serde_json::json;

/// Passes the run's trigger items on.
struct Start;

#[async_trait]
impl Node for Start {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(input.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_node(
        NodeDescriptor::new("manual", NodeCategory::Trigger)
            .label("Manual start")
            .icon("play")
            .description("Starts a run with the items the host passes to `Engine::start`.")
            .config_schema(json!({ "type": "object", "additionalProperties": false })),
        Start,
    )?;
    registry.register_node(
        NodeDescriptor::new("webhook", NodeCategory::Trigger)
            .label("Webhook")
            .icon("webhook")
            .description(
                "Starts a run with the JSON body of an HTTP request the host received; the \
                 config's `path` tells the host where to listen.",
            )
            .config_schema(json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string", "pattern": "^/[A-Za-z0-9/_-]*$", "examples": ["/suppliers/new"] },
                    "method": { "enum": ["POST", "PUT"], "default": "POST" }
                },
                "additionalProperties": false
            })),
        Start,
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run};
    use serde_json::json;

    #[tokio::test]
    async fn passes_the_trigger_items_on() {
        let detail = run("manual", json!({}), json!([{"a": 1}, {"a": 2}])).await;
        assert_eq!(out(&detail, "main"), vec![json!({"a": 1}), json!({"a": 2})]);
    }

    #[tokio::test]
    async fn a_webhook_passes_the_request_body_on_and_checks_its_path() {
        let detail = run(
            "webhook",
            json!({"path": "/suppliers/new"}),
            json!({"vat": "DE1"}),
        )
        .await;
        assert_eq!(out(&detail, "main"), vec![json!({"vat": "DE1"})]);
        let message = publish_error("webhook", json!({"path": "no-slash"})).await;
        assert!(message.contains("/path"), "{message}");
    }
}
