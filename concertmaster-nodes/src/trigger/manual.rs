//! `manual` and `webhook`: runs started by the host (a button, an API call,
//! an HTTP request it received) with the items it passes to `Engine::start`.

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, RegistryError},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Config of a `manual` trigger: none.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(example = serde_json::json!({}))]
struct ManualConfig {}

/// Config of a `webhook` trigger, read by the host that listens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
#[schemars(example = serde_json::json!({"path": "/suppliers/new", "method": "POST"}))]
struct WebhookConfig {
    /// Where the host listens for the request.
    #[schemars(regex(pattern = "^/[A-Za-z0-9/_-]*$"), example = "/suppliers/new")]
    path: Option<String>,
    /// The request's method.
    #[serde(default)]
    method: WebhookMethod,
}

#[derive(Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum WebhookMethod {
    #[default]
    Post,
    Put,
}

/// Passes the run's trigger items on.
struct Start;

#[async_trait]
impl Node for Start {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(input.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("manual", NodeCategory::Trigger)
            .label("Manual start")
            .icon("play")
            .description("Starts a run with the items the host passes to `Engine::start`."),
        |_: ManualConfig| Ok(Start),
    )?;
    registry.register_with_config(
        NodeDescriptor::new("webhook", NodeCategory::Trigger)
            .label("Webhook")
            .icon("webhook")
            .description(
                "Starts a run with the JSON body of an HTTP request the host received; the \
                 config's `path` tells the host where to listen.",
            ),
        |_: WebhookConfig| Ok(Start),
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
