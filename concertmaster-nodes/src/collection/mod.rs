//! Collection nodes: send forms to people, remind them, wait for their
//! answers, and have a person review them. They work through the
//! [`Forms`](crate::forms::Forms) of one store.

pub(crate) mod reminders;
pub(crate) mod review;
pub(crate) mod send_form;
pub(crate) mod wait_for_responses;

use std::collections::BTreeSet;
use std::sync::Arc;

use concertmaster_core::{
    form::ResponseFilter, node::RegistryError, store::StoreError, Item, NodeContext, NodeError,
    NodeRegistry,
};

use crate::forms::{issue, FormsInner, LinkRequest, Notification, NotificationKind};

pub(crate) fn register(
    registry: &mut NodeRegistry,
    forms: &Arc<FormsInner>,
) -> Result<(), RegistryError> {
    send_form::register(registry, forms)?;
    wait_for_responses::register(registry, forms)?;
    reminders::register(registry, forms)?;
    review::register(registry, forms)?;
    crate::trigger::form_submission::register(registry)
}

/// A store failure inside a node: retried when the store may come back.
pub(crate) fn store_failed(err: StoreError) -> NodeError {
    if err.is_retryable() {
        NodeError::retryable(err.to_string())
    } else {
        NodeError::fatal(err.to_string())
    }
}

/// What the items of a `send_form` node say: which node sent them and to
/// whom.
pub(crate) struct Sent {
    pub(crate) send_node: String,
    pub(crate) respondents: Vec<String>,
    pub(crate) form_id: String,
    pub(crate) form_version: u32,
}

impl Sent {
    /// Reads the items a `send_form` node emitted; `config_node` names the
    /// sender when the items do not.
    pub(crate) fn from_items(items: &[Item], config_node: Option<&str>) -> Result<Self, NodeError> {
        let field =
            |item: &Item, name: &str| item.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let mut senders: BTreeSet<String> =
            items.iter().filter_map(|i| field(i, "sendNode")).collect();
        if let Some(node) = config_node {
            senders.insert(node.to_string());
        }
        let send_node = match senders.len() {
            1 => senders.into_iter().next().unwrap_or_default(),
            0 => {
                return Err(NodeError::fatal(
                    "no items from a send_form node: connect this node after send_form, or name it in `sendNode`",
                ))
            }
            _ => {
                return Err(NodeError::fatal(format!(
                    "items come from several send_form nodes ({}); give each its own node",
                    senders.into_iter().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        let respondents: Vec<String> = items
            .iter()
            .filter_map(|i| field(i, "respondent"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let first = items.first();
        Ok(Self {
            send_node,
            respondents,
            form_id: first.and_then(|i| field(i, "formId")).unwrap_or_default(),
            form_version: first
                .and_then(|i| i.get("formVersion"))
                .and_then(|v| v.as_u64())
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
        })
    }

    /// The responses stored so far for this sender in this run, oldest first.
    pub(crate) async fn responses(
        &self,
        forms: &FormsInner,
        ctx: &NodeContext,
    ) -> Result<Vec<concertmaster_core::form::FormResponse>, NodeError> {
        let filter = ResponseFilter::node(ctx.run_id(), self.send_node.as_str()).limit(1000);
        let mut found = forms
            .store
            .responses(ctx.tenant(), &filter)
            .await
            .map_err(store_failed)?;
        found.reverse();
        Ok(found)
    }
}

/// Fills `{name}` placeholders.
pub(crate) fn render(template: &str, values: &[(&str, &str)]) -> String {
    values
        .iter()
        .fold(template.to_string(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

/// The message that carries one personal link.
pub(crate) struct Delivery<'a> {
    pub(crate) kind: NotificationKind,
    /// Who receives it, when not the respondent the link answers for.
    pub(crate) to: Option<&'a str>,
    /// The form's title, for `{title}`.
    pub(crate) title: &'a str,
    /// Subject template.
    pub(crate) subject: &'a str,
    /// Text template.
    pub(crate) message: &'a str,
    pub(crate) idempotency_key: String,
}

/// Issues the link `request` describes and delivers it through the
/// notifier; a failure names the recipient and says whether to retry.
pub(crate) async fn deliver(
    forms: &FormsInner,
    ctx: &NodeContext,
    request: LinkRequest,
    delivery: Delivery<'_>,
) -> Result<(), NodeError> {
    let respondent = request.respondent.clone().unwrap_or_default();
    let expires = request.expires_at.format("%Y-%m-%d %H:%M UTC").to_string();
    let (_, url) = issue(forms, ctx.tenant(), request, ctx.now())
        .await
        .map_err(|err| NodeError::retryable(format!("link for {respondent}: {err}")))?;
    let values = [
        ("title", delivery.title),
        ("link", url.as_str()),
        ("expires", expires.as_str()),
        ("respondent", respondent.as_str()),
    ];
    let notification = Notification {
        tenant: ctx.tenant().clone(),
        to: delivery
            .to
            .map_or_else(|| respondent.clone(), str::to_string),
        kind: delivery.kind,
        subject: render(delivery.subject, &values),
        body: render(delivery.message, &values),
        link: url,
        idempotency_key: delivery.idempotency_key,
    };
    forms.notifier.notify(&notification).await.map_err(|err| {
        if err.retryable {
            NodeError::retryable(err.to_string())
        } else {
            NodeError::fatal(err.to_string())
        }
    })
}
