//! `form_submission`: starts a run for each submission of a public form
//! (`Forms::submit_public`), with the stored response as the item.

use async_trait::async_trait;
use concertmaster_core::{
    node::{NodeCategory, RegistryError},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;

/// Config of a `form_submission` trigger, read by
/// [`Forms::submit_public`](crate::forms::Forms::submit_public).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"formId": "supplier-onboarding"}))]
struct FormSubmissionConfig {
    /// The public form whose submissions start runs.
    #[schemars(length(min = 1))]
    #[allow(dead_code)]
    form_id: String,
}

/// Passes the response item on.
struct FormSubmission;

#[async_trait]
impl Node for FormSubmission {
    async fn execute(&self, _ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(input.into())
    }
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("form_submission", NodeCategory::Trigger)
            .label("Form submitted")
            .icon("file-input")
            .description(
                "Starts a run when someone submits the public form `formId` (through \
                 Forms::submit_public); the item is the stored response, data under `data`.",
            ),
        |_: FormSubmissionConfig| Ok(FormSubmission),
    )
}
