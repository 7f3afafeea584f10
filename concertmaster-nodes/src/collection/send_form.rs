//! `send_form`: gives each recipient a personal, single-use form link and
//! delivers it through the host's `Notifier`.

use std::sync::Arc;

use async_trait::async_trait;
use concertmaster_core::{
    form::FormId,
    node::{ConfigError, NodeCategory, RegistryError, MAIN_PORT},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{deliver, store_failed, Delivery};
use crate::forms::{FormsInner, LinkRequest, NotificationKind};
use crate::support::{check_pointer, duration::Interval, get_pointer};

const DEFAULT_SUBJECT: &str = "Please fill in: {title}";
const DEFAULT_MESSAGE: &str =
    "Hello,\n\nplease fill in \"{title}\" here:\n{link}\n\nThe link is for you alone, works once, and until {expires}.";

/// Config of a `send_form` node: the form, and recipients either listed or
/// read from each incoming item.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"formId": "supplier-onboarding", "recipientField": "/contact/email", "expiresIn": "14d"}))]
struct SendFormConfig {
    /// The form to send.
    #[schemars(length(min = 1))]
    form_id: String,
    /// A fixed version; the latest when absent.
    #[schemars(range(min = 1))]
    form_version: Option<u32>,
    /// Addresses to send to.
    #[schemars(length(min = 1), inner(length(min = 3)))]
    recipients: Option<Vec<String>>,
    /// JSON pointer to the address in each incoming item.
    #[schemars(example = "/contact/email")]
    recipient_field: Option<String>,
    /// How long the links work, like `14d`; the `Forms` default otherwise.
    #[schemars(example = "14d")]
    expires_in: Option<Interval>,
    /// Subject; `{title}`, `{link}`, `{expires}`, `{respondent}` are filled in.
    #[serde(default = "default_subject")]
    subject: String,
    /// Message text, with the same placeholders.
    #[serde(default = "default_message")]
    message: String,
}

fn default_subject() -> String {
    DEFAULT_SUBJECT.into()
}

fn default_message() -> String {
    DEFAULT_MESSAGE.into()
}

enum Recipients {
    Listed(Vec<String>),
    FromItems(String),
}

struct SendForm {
    forms: Arc<FormsInner>,
    form_id: FormId,
    form_version: Option<u32>,
    recipients: Recipients,
    expires_in: Option<chrono::Duration>,
    subject: String,
    message: String,
}

impl SendForm {
    fn targets(&self, items: Vec<Item>) -> Result<Vec<(String, Item)>, NodeError> {
        match &self.recipients {
            Recipients::Listed(list) => Ok(list.iter().map(|r| (r.clone(), Item::new())).collect()),
            Recipients::FromItems(pointer) => items
                .into_iter()
                .enumerate()
                .map(
                    |(i, item)| match get_pointer(&item, pointer).and_then(|v| v.as_str()) {
                        Some(to) if !to.trim().is_empty() => Ok((to.trim().to_string(), item)),
                        _ => Err(
                            NodeError::fatal(format!("item {i}: no recipient at {pointer}"))
                                .with_details(json!({ "item": i })),
                        ),
                    },
                )
                .collect(),
        }
    }
}

#[async_trait]
impl Node for SendForm {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let form = self
            .forms
            .store
            .form(ctx.tenant(), &self.form_id, self.form_version)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| {
                NodeError::fatal(format!(
                    "form {} (version {:?}) does not exist for tenant {}; publish it with Forms::publish",
                    self.form_id,
                    self.form_version,
                    ctx.tenant()
                ))
            })?;
        let targets = self.targets(input.take(MAIN_PORT))?;
        let now = ctx.now();
        let expires_at = now + self.expires_in.unwrap_or(self.forms.link_ttl);
        let mut out = Vec::with_capacity(targets.len());
        for (i, (respondent, mut item)) in targets.into_iter().enumerate() {
            let request = LinkRequest {
                form: form.id.clone(),
                version: form.version,
                run: Some(ctx.run_id()),
                node: Some(ctx.node_id().clone()),
                respondent: Some(respondent.clone()),
                expires_at,
            };
            let delivery = Delivery {
                to: None,
                kind: NotificationKind::Invitation,
                title: &form.title,
                subject: &self.subject,
                message: &self.message,
                idempotency_key: ctx.item_key(i),
            };
            deliver(&self.forms, ctx, request, delivery).await?;
            item.insert("respondent".into(), json!(respondent));
            item.insert("formId".into(), json!(form.id));
            item.insert("formVersion".into(), json!(form.version));
            item.insert("sendNode".into(), json!(ctx.node_id()));
            item.insert("expiresAt".into(), json!(expires_at));
            out.push(item);
        }
        Ok(NodeOutcome::main(out))
    }
}

fn build(forms: &Arc<FormsInner>, config: SendFormConfig) -> Result<SendForm, ConfigError> {
    let recipients = match (config.recipients, config.recipient_field) {
        (Some(list), None) if !list.is_empty() => Recipients::Listed(list),
        (None, Some(pointer)) => {
            check_pointer(&pointer, "/recipientField")?;
            Recipients::FromItems(pointer)
        }
        _ => {
            return Err(ConfigError::new(
                "give exactly one of `recipients` (a list of addresses) and `recipientField` (a JSON pointer into each item)",
            ))
        }
    };
    Ok(SendForm {
        forms: Arc::clone(forms),
        form_id: FormId::new(config.form_id),
        form_version: config.form_version,
        recipients,
        expires_in: config.expires_in.map(|d| d.0),
        subject: config.subject,
        message: config.message,
    })
}

pub(crate) fn register(
    registry: &mut NodeRegistry,
    forms: &Arc<FormsInner>,
) -> Result<(), RegistryError> {
    let forms = Arc::clone(forms);
    registry.register_with_config(
        NodeDescriptor::new("send_form", NodeCategory::Collection)
            .with_side_effects()
            .label("Send form")
            .icon("send")
            .description(
                "Gives each recipient a personal link to the form (single use, expiring) and \
                 delivers it through the host's notifier. Emits one item per recipient, for \
                 `wait_for_responses` and `reminders`.",
            ),
        move |config: SendFormConfig| build(&forms, config),
    )
}
