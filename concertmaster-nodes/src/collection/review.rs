//! `review`: holds each response until a person approves or rejects it
//! (with their name and comment), then routes it by the decision.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    form::ReviewStatus,
    node::{ConfigError, NodeCategory, RegistryError, Suspend, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::Sent;
use crate::forms::{review_key, FormsInner};
use crate::support::duration::Interval;

/// Config of a `review` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"deadline": "7d"}))]
struct ReviewConfig {
    /// Stop waiting after this long; undecided responses go to `undecided`.
    #[schemars(example = "7d")]
    deadline: Option<Interval>,
    /// The `send_form` node the responses answer, when the items do not say.
    send_node: Option<String>,
}

struct ReviewNode {
    forms: Arc<FormsInner>,
    deadline: Option<chrono::Duration>,
    send_node: Option<String>,
}

#[async_trait]
impl Node for ReviewNode {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        if items.is_empty() {
            // Nobody was asked: nothing to wait for.
            return Ok(Ports::new().into());
        }
        let sent = Sent::from_items(&items, self.send_node.as_deref())?;
        let deadline: Option<DateTime<Utc>> = match ctx.resumed() {
            Some(resumed) => {
                serde_json::from_value(resumed.state["deadline"].clone()).unwrap_or(None)
            }
            None => self.deadline.map(|d| ctx.now() + d),
        };
        let stored: HashMap<String, _> = sent
            .responses(&self.forms, ctx)
            .await?
            .into_iter()
            .map(|r| (r.id.to_string(), r))
            .collect();
        let response_of = |item: &concertmaster_core::Item| {
            item.get("responseId")
                .and_then(|v| v.as_str())
                .and_then(|id| stored.get(id))
        };
        let pending = items.iter().any(|item| {
            response_of(item).is_some_and(|r| r.review_status == ReviewStatus::Pending)
        });
        let timed_out = deadline.is_some_and(|d| ctx.now() >= d);
        if pending && !timed_out {
            let mut suspend = Suspend::until_event(review_key(ctx.run_id(), &sent.send_node))
                .with_state(json!({ "deadline": deadline }));
            if let Some(at) = deadline {
                suspend = suspend.with_deadline(at);
            }
            return Ok(NodeOutcome::suspend(suspend));
        }
        let mut out = Ports::new();
        for mut item in items {
            let (port, review) = match response_of(&item) {
                Some(r) if r.review_status == ReviewStatus::Approved => {
                    ("approved", r.review.clone())
                }
                Some(r) if r.review_status == ReviewStatus::Rejected => {
                    ("rejected", r.review.clone())
                }
                _ => ("undecided", None),
            };
            if let Some(review) = review {
                item.insert("reviewStatus".into(), json!(review.status));
                item.insert(
                    "review".into(),
                    json!({ "reviewer": review.reviewer, "comment": review.comment, "at": review.at }),
                );
            }
            out.push(port, item);
        }
        Ok(out.into())
    }
}

pub(crate) fn register(
    registry: &mut NodeRegistry,
    forms: &Arc<FormsInner>,
) -> Result<(), RegistryError> {
    let forms = Arc::clone(forms);
    registry.register_with_config(
        NodeDescriptor::new("review", NodeCategory::Collection)
            .label("Review")
            .icon("user-check")
            .description(
                "Holds the responses from wait_for_responses until a reviewer approves or \
                 rejects each one (Forms::review, with name and comment), then sends each to \
                 `approved` or `rejected`; after the deadline, undecided ones go to `undecided`.",
            )
            .outputs(["approved", "rejected", "undecided"]),
        move |config: ReviewConfig| -> Result<ReviewNode, ConfigError> {
            Ok(ReviewNode {
                forms: Arc::clone(&forms),
                deadline: config.deadline.map(|d| d.0),
                send_node: config.send_node,
            })
        },
    )
}
