//! `delay`: holds the items for a duration, or until a time an item names,
//! durably: the run waits in the store, holding no task.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, Suspend, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::Expr;
use crate::support::{compile_at, duration::Interval, item_value};

/// Config of a `delay` node: exactly one of `duration` and `until`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("oneOf" = [{ "required": ["duration"] }, { "required": ["until"] }]))]
#[schemars(example = serde_json::json!({"duration": "3d"}), example = serde_json::json!({"until": ".dueDate"}))]
struct DelayConfig {
    /// How long, like `90s`, `15m`, `2h30m`, `3d`, `1w` or `PT2H30M`.
    #[schemars(example = "3d")]
    duration: Option<Interval>,
    /// jq on the first item, giving an RFC 3339 time (`.dueDate`).
    #[schemars(length(min = 1), example = ".dueDate")]
    until: Option<String>,
}

enum Wait {
    For(chrono::Duration),
    Until(Expr),
}

struct Delay {
    wait: Wait,
}

impl Delay {
    fn due(&self, ctx: &NodeContext, input: &Ports) -> Result<DateTime<Utc>, NodeError> {
        match &self.wait {
            Wait::For(duration) => Ok(ctx.now() + *duration),
            Wait::Until(expr) => {
                let first = input
                    .main_items()
                    .first()
                    .map(item_value)
                    .unwrap_or(Value::Null);
                let at = expr
                    .eval_one(&first)
                    .map_err(|err| NodeError::fatal(format!("until: {err}")))?;
                let text = at.as_str().ok_or_else(|| {
                    NodeError::fatal(format!("until gave {at}, not an RFC 3339 time"))
                })?;
                DateTime::parse_from_rfc3339(text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|err| {
                        NodeError::fatal(format!(
                            "until gave {text:?}, not an RFC 3339 time: {err}"
                        ))
                    })
            }
        }
    }
}

#[async_trait]
impl Node for Delay {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        if ctx.resumed().is_some() {
            return Ok(NodeOutcome::main(input.take(MAIN_PORT)));
        }
        let due = self.due(ctx, &input)?;
        if due <= ctx.now() {
            return Ok(NodeOutcome::main(input.take(MAIN_PORT)));
        }
        Ok(NodeOutcome::suspend(Suspend::until_time(due)))
    }
}

fn build(config: DelayConfig) -> Result<Delay, ConfigError> {
    let wait = match (config.duration, config.until) {
        (Some(Interval(duration)), None) => Wait::For(duration),
        (None, Some(until)) => Wait::Until(compile_at(&until, "/until")?),
        _ => {
            return Err(ConfigError::new(
                "give exactly one of `duration` (\"3d\") and `until` (jq giving a time)",
            ))
        }
    };
    Ok(Delay { wait })
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("delay", NodeCategory::Logic)
            .label("Delay")
            .icon("clock")
            .description(
                "Holds the items for a duration (`3d`, `2h30m`) or until the time a jq \
                 expression reads from the first item; the run waits in the store meanwhile.",
            ),
        build,
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::single;
    use concertmaster_core::testing::TestEngine;
    use concertmaster_core::{clock::Clock, RunStatus};
    use serde_json::json;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_durably_for_the_duration() {
        let test = TestEngine::new(crate::registry()).await.unwrap();
        let workflow = test
            .publish(single("delay", json!({"duration": "3d"})))
            .await
            .unwrap();
        let run = test
            .engine
            .start(&workflow, json!({"id": 1}))
            .await
            .unwrap();
        assert_eq!(test.settled(run).await.unwrap().status, RunStatus::Waiting);
        test.advance(Duration::from_secs(2 * 86_400)).await.unwrap();
        assert_eq!(test.settled(run).await.unwrap().status, RunStatus::Waiting);
        test.advance(Duration::from_secs(86_400)).await.unwrap();
        assert_eq!(
            test.settled(run).await.unwrap().status,
            RunStatus::Succeeded
        );
        let detail = test.engine.run(&test.tenant, run).await.unwrap();
        assert_eq!(detail.output("n").unwrap().main_items()[0]["id"], 1);
    }

    #[tokio::test]
    async fn waits_until_the_time_an_item_names() {
        let test = TestEngine::new(crate::registry()).await.unwrap();
        let due = (test.clock.now() + chrono::Duration::hours(5)).to_rfc3339();
        let workflow = test
            .publish(single("delay", json!({"until": ".due"})))
            .await
            .unwrap();
        let run = test
            .engine
            .start(&workflow, json!({"due": due}))
            .await
            .unwrap();
        assert_eq!(test.settled(run).await.unwrap().status, RunStatus::Waiting);
        test.advance(Duration::from_secs(5 * 3600)).await.unwrap();
        assert_eq!(
            test.settled(run).await.unwrap().status,
            RunStatus::Succeeded
        );
    }
}
