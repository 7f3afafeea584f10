//! `form_submission`: starts a run for each submission of a public form
//! (`Forms::submit_public`), with the stored response as the item.

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, RegistryError},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use serde_json::json;

/// Passes the response item on.
struct FormSubmission;

#[async_trait]
impl Node for FormSubmission {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(input.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_node(
        NodeDescriptor::new("form_submission", NodeCategory::Trigger)
            .label("Form submitted")
            .icon("file-input")
            .description(
                "Starts a run when someone submits the public form `formId` (through \
                 Forms::submit_public); the item is the stored response, data under `data`.",
            )
            .config_schema(json!({
                "type": "object",
                "properties": { "formId": { "type": "string", "minLength": 1 } },
                "required": ["formId"],
                "additionalProperties": false
            })),
        FormSubmission,
    )
}
