//! `wait_for_responses`: waits, durably, until every recipient of a
//! `send_form` node answered, a quorum did, or a deadline passed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    form::FormResponse,
    node::{ConfigError, NodeCategory, RegistryError, Suspend, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Sent;
use crate::forms::{response_item, response_key, FormsInner};
use crate::support::duration::Interval;

/// Config of a `wait_for_responses` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"mode": "quorum", "quorum": 2, "deadline": "14d"}))]
struct WaitConfig {
    /// Wait for every recipient, or for a quorum.
    #[serde(default)]
    mode: Mode,
    /// `quorum`: how many responses are enough.
    #[schemars(range(min = 1))]
    quorum: Option<usize>,
    /// Stop waiting after this long (`14d`) with what came.
    #[schemars(example = "14d")]
    deadline: Option<Interval>,
    /// The `send_form` node, when the incoming items do not say.
    send_node: Option<String>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Mode {
    /// Every recipient answers.
    #[default]
    All,
    /// `quorum` responses are enough.
    Quorum,
}

struct WaitForResponses {
    forms: Arc<FormsInner>,
    mode: Mode,
    quorum: usize,
    deadline: Option<chrono::Duration>,
    send_node: Option<String>,
}

/// The latest response of each respondent (anonymous ones all kept), oldest first.
fn latest_per_respondent(responses: Vec<FormResponse>) -> Vec<FormResponse> {
    let mut by_respondent: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept: Vec<Option<FormResponse>> = Vec::new();
    for response in responses {
        if let Some(who) = response.respondent.clone() {
            if let Some(&earlier) = by_respondent.get(&who) {
                kept[earlier] = None;
            }
            by_respondent.insert(who, kept.len());
        }
        kept.push(Some(response));
    }
    kept.into_iter().flatten().collect()
}

#[async_trait]
impl Node for WaitForResponses {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let items = input.take(MAIN_PORT);
        if items.is_empty() {
            // Nobody was asked: nothing to wait for.
            return Ok(NodeOutcome::main(Vec::new()));
        }
        let sent = Sent::from_items(&items, self.send_node.as_deref())?;
        let deadline: Option<DateTime<Utc>> = match ctx.resumed() {
            Some(resumed) => {
                serde_json::from_value(resumed.state["deadline"].clone()).unwrap_or(None)
            }
            None => self.deadline.map(|d| ctx.now() + d),
        };
        if self.mode == Mode::Quorum && self.quorum > sent.respondents.len() {
            return Err(NodeError::fatal(format!(
                "quorum {} is more than the {} recipients of {}",
                self.quorum,
                sent.respondents.len(),
                sent.send_node
            )));
        }
        let responses = latest_per_respondent(sent.responses(&self.forms, ctx).await?);
        let answered: BTreeSet<&str> = responses
            .iter()
            .filter_map(|r| r.respondent.as_deref())
            .collect();
        let done = match self.mode {
            Mode::All => sent
                .respondents
                .iter()
                .all(|r| answered.contains(r.as_str())),
            Mode::Quorum => responses.len() >= self.quorum,
        };
        let timed_out = deadline.is_some_and(|d| ctx.now() >= d);
        if !done && !timed_out {
            let mut suspend = Suspend::until_event(response_key(ctx.run_id(), &sent.send_node))
                .with_state(json!({ "deadline": deadline, "answered": responses.len() }));
            if let Some(at) = deadline {
                suspend = suspend.with_deadline(at);
            }
            return Ok(NodeOutcome::suspend(suspend));
        }
        let missing: Vec<_> = items
            .into_iter()
            .filter(|item| {
                item.get("respondent")
                    .and_then(Value::as_str)
                    .is_some_and(|r| !answered.contains(r))
            })
            .collect();
        let got = responses
            .iter()
            .map(|r| response_item(r, Some(&sent.send_node)))
            .collect();
        let mut out = Ports::main(got);
        if !missing.is_empty() {
            out.extend("missing", missing);
        }
        Ok(out.into())
    }
}

fn build(forms: &Arc<FormsInner>, config: WaitConfig) -> Result<WaitForResponses, ConfigError> {
    let quorum = match (config.mode, config.quorum) {
        (Mode::Quorum, Some(n)) if n > 0 => n,
        (Mode::Quorum, _) => {
            return Err(ConfigError::new("mode quorum needs `quorum`, at least 1").at("/quorum"))
        }
        (Mode::All, _) => 0,
    };
    Ok(WaitForResponses {
        forms: Arc::clone(forms),
        mode: config.mode,
        quorum,
        deadline: config.deadline.map(|d| d.0),
        send_node: config.send_node,
    })
}

pub(crate) fn register(
    registry: &mut NodeRegistry,
    forms: &Arc<FormsInner>,
) -> Result<(), RegistryError> {
    let forms = Arc::clone(forms);
    registry.register_with_config(
        NodeDescriptor::new("wait_for_responses", NodeCategory::Collection)
            .label("Wait for responses")
            .icon("inbox")
            .description(
                "Waits until every recipient of the send_form node before it answered, or a \
                 quorum did, or the deadline passed; the run holds no task meanwhile. Emits \
                 one item per response on `main`, and the recipients who did not answer on \
                 `missing`.",
            )
            .outputs(["main", "missing"]),
        move |config: WaitConfig| build(&forms, config),
    )
}
