//! `reminders`: reminds the recipients of a `send_form` node who have not
//! answered, on a schedule (every 3 days, up to N times), then, with
//! `escalateTo`, asks someone else to answer on behalf of each who still
//! has not; stops as soon as everyone answered. It runs beside
//! `wait_for_responses`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    form::FormId,
    node::{ConfigError, NodeCategory, RegistryError, Suspend, MAIN_PORT},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{deliver, Delivery, Sent};
use crate::forms::{reminder_key, FormsInner, LinkRequest, NotificationKind};
use crate::support::duration::Interval;

const DEFAULT_SUBJECT: &str = "Reminder: please fill in {title}";
const DEFAULT_ESCALATION_SUBJECT: &str = "Please answer for {respondent}: {title}";
const DEFAULT_ESCALATION_MESSAGE: &str =
    "Hello,\n\n{respondent} has not answered \"{title}\" despite reminders. Please fill it in on their behalf here:\n{link}\n\nThe link works once, until {expires}.";
const DEFAULT_MESSAGE: &str =
    "Hello,\n\nwe have not received your answers to \"{title}\" yet. Please fill it in here:\n{link}\n\nThe link works once, until {expires}.";

/// Config of a `reminders` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"every": "3d", "times": 3, "escalateTo": "purchasing-lead@acme.example"}))]
struct RemindersConfig {
    /// Time between reminders, like `3d` or `P3D`.
    #[schemars(example = "3d")]
    every: Interval,
    /// At most this many reminders per recipient.
    #[schemars(range(min = 1, max = 100))]
    times: u32,
    /// Subject of a reminder; `{title}`, `{link}`, `{expires}` and
    /// `{respondent}` are filled in.
    #[serde(default = "default_subject")]
    subject: String,
    /// Text of a reminder, with the same placeholders.
    #[serde(default = "default_message")]
    message: String,
    /// The `send_form` node, when the incoming items do not say.
    send_node: Option<String>,
    /// Who is asked to answer on behalf of a recipient still silent one
    /// interval after the last reminder.
    #[schemars(example = "purchasing-lead@acme.example")]
    escalate_to: Option<String>,
    /// Subject of the escalation, with the same placeholders.
    #[serde(default = "default_escalation_subject")]
    escalation_subject: String,
    /// Text of the escalation, with the same placeholders.
    #[serde(default = "default_escalation_message")]
    escalation_message: String,
}

fn default_subject() -> String {
    DEFAULT_SUBJECT.into()
}

fn default_message() -> String {
    DEFAULT_MESSAGE.into()
}

fn default_escalation_subject() -> String {
    DEFAULT_ESCALATION_SUBJECT.into()
}

fn default_escalation_message() -> String {
    DEFAULT_ESCALATION_MESSAGE.into()
}

struct Reminders {
    forms: Arc<FormsInner>,
    every: chrono::Duration,
    times: u32,
    subject: String,
    message: String,
    send_node: Option<String>,
    escalation: Option<Escalation>,
}

/// Where and how the node escalates.
struct Escalation {
    to: String,
    subject: String,
    message: String,
}

/// What `send_links` sends and to whom, besides the link.
struct Message<'a> {
    kind: NotificationKind,
    /// Who receives it, when not the respondent.
    to: Option<&'a str>,
    subject: &'a str,
    text: &'a str,
}

/// What the node keeps between wake-ups.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Progress {
    /// Reminders sent so far.
    rounds: u32,
    /// When the next is due.
    next: Option<DateTime<Utc>>,
    /// Reminders per respondent.
    reminded: BTreeMap<String, u32>,
    /// Respondents escalated, with whom they were escalated to.
    #[serde(default)]
    escalated: BTreeMap<String, String>,
}

impl Reminders {
    /// Sends each of `who` (or, for an escalation, someone on their behalf)
    /// a fresh link answering for them; `key` gives each message's
    /// idempotency key from its index and respondent.
    async fn send_links(
        &self,
        ctx: &NodeContext,
        sent: &Sent,
        who: &[&str],
        expires_at: DateTime<Utc>,
        message: Message<'_>,
        key: impl Fn(usize, &str) -> String,
    ) -> Result<(), NodeError> {
        let title = self.title(ctx, sent).await?;
        for (i, respondent) in who.iter().enumerate() {
            let delivery = Delivery {
                kind: message.kind,
                to: message.to,
                title: &title,
                subject: message.subject,
                message: message.text,
                idempotency_key: key(i, respondent),
            };
            deliver(
                &self.forms,
                ctx,
                link_for(sent, ctx, respondent, expires_at),
                delivery,
            )
            .await?;
        }
        Ok(())
    }

    async fn title(&self, ctx: &NodeContext, sent: &Sent) -> Result<String, NodeError> {
        let form = FormId::new(&sent.form_id);
        Ok(self
            .forms
            .store
            .form(ctx.tenant(), &form, Some(sent.form_version))
            .await
            .map_err(super::store_failed)?
            .map_or_else(|| sent.form_id.clone(), |f| f.title))
    }
}

/// A fresh link answering for `respondent`.
fn link_for(
    sent: &Sent,
    ctx: &NodeContext,
    respondent: &str,
    expires_at: DateTime<Utc>,
) -> LinkRequest {
    LinkRequest {
        form: FormId::new(&sent.form_id),
        version: sent.form_version,
        run: Some(ctx.run_id()),
        node: Some(sent.send_node.as_str().into()),
        respondent: Some(respondent.to_string()),
        expires_at,
    }
}

/// The earliest expiry among the items: reminders never outlive the links.
fn expiry(items: &[Item]) -> Option<DateTime<Utc>> {
    items
        .iter()
        .filter_map(|i| i.get("expiresAt"))
        .filter_map(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
        .min()
}

#[async_trait]
impl Node for Reminders {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take(MAIN_PORT);
        if items.is_empty() {
            // Nobody was asked: nothing to wait for.
            return Ok(NodeOutcome::main(Vec::new()));
        }
        let sent = Sent::from_items(&items, self.send_node.as_deref())?;
        let mut progress: Progress = ctx
            .resumed()
            .and_then(|r| serde_json::from_value(r.state.clone()).ok())
            .unwrap_or_default();
        let now = ctx.now();
        let expires_at = expiry(&items).unwrap_or(now + self.forms.link_ttl);
        let responses = sent.responses(&self.forms, ctx).await?;
        let answered: BTreeSet<&str> = responses
            .iter()
            .filter_map(|r| r.respondent.as_deref())
            .collect();
        let waiting: Vec<&str> = sent
            .respondents
            .iter()
            .map(String::as_str)
            .filter(|r| !answered.contains(r))
            .collect();
        let due = progress.next.is_some_and(|next| now >= next);
        let reminding = progress.rounds < self.times;
        if due && !waiting.is_empty() && now < expires_at {
            if reminding {
                let message = Message {
                    kind: NotificationKind::Reminder,
                    to: None,
                    subject: &self.subject,
                    text: &self.message,
                };
                let round = progress.rounds;
                self.send_links(ctx, &sent, &waiting, expires_at, message, |i, _| {
                    format!("{}:{round}", ctx.item_key(i))
                })
                .await?;
                progress.rounds += 1;
                for who in &waiting {
                    *progress.reminded.entry(who.to_string()).or_default() += 1;
                }
            } else if let Some(escalation) = &self.escalation {
                let message = Message {
                    kind: NotificationKind::Escalation,
                    to: Some(&escalation.to),
                    subject: &escalation.subject,
                    text: &escalation.message,
                };
                self.send_links(
                    ctx,
                    &sent,
                    &waiting,
                    expires_at,
                    message,
                    |_, respondent| format!("{}:escalation:{respondent}", ctx.item_key(0)),
                )
                .await?;
                for who in &waiting {
                    progress
                        .escalated
                        .insert(who.to_string(), escalation.to.clone());
                }
            }
            progress.next = None;
        }
        // After the last reminder, one more interval before escalating.
        let escalation_pending = self.escalation.is_some() && progress.escalated.is_empty();
        let finished = waiting.is_empty()
            || (progress.rounds >= self.times && !escalation_pending)
            || now >= expires_at;
        if !finished {
            let next = progress.next.unwrap_or(now + self.every);
            progress.next = Some(next);
            let state = serde_json::to_value(&progress).unwrap_or_default();
            return Ok(NodeOutcome::suspend(
                Suspend::until_event(reminder_key(ctx.run_id(), &sent.send_node))
                    .with_deadline(next)
                    .with_state(state),
            ));
        }
        for item in &mut items {
            let count = item
                .get("respondent")
                .and_then(|v| v.as_str())
                .and_then(|r| progress.reminded.get(r))
                .copied()
                .unwrap_or(0);
            item.insert("reminded".into(), json!(count));
            let escalated = item
                .get("respondent")
                .and_then(|v| v.as_str())
                .and_then(|r| progress.escalated.get(r))
                .cloned();
            if let Some(to) = escalated {
                item.insert("escalatedTo".into(), json!(to));
            }
        }
        Ok(NodeOutcome::main(items))
    }
}

fn build(forms: &Arc<FormsInner>, config: RemindersConfig) -> Result<Reminders, ConfigError> {
    Ok(Reminders {
        forms: Arc::clone(forms),
        every: config.every.0,
        times: config.times,
        subject: config.subject,
        message: config.message,
        send_node: config.send_node,
        escalation: config.escalate_to.map(|to| Escalation {
            to,
            subject: config.escalation_subject,
            message: config.escalation_message,
        }),
    })
}

pub(crate) fn register(
    registry: &mut NodeRegistry,
    forms: &Arc<FormsInner>,
) -> Result<(), RegistryError> {
    let forms = Arc::clone(forms);
    registry.register_with_config(
        NodeDescriptor::new("reminders", NodeCategory::Collection)
            .with_side_effects()
            .label("Reminders")
            .icon("bell")
            .description(
                "Beside wait_for_responses: every so often (`3d`), sends a fresh link to each \
                 recipient of the send_form node who has not answered, up to `times` times; \
                 with `escalateTo`, one interval later asks that address to answer on behalf \
                 of each still silent. Finishes as soon as everyone answered or the links \
                 expired; its items say who was reminded how often and who was escalated.",
            ),
        move |config: RemindersConfig| build(&forms, config),
    )
}
