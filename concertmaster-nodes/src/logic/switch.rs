//! `switch`: sends each item to the port of the first case (or every case)
//! whose jq condition holds, else to `default`.

use std::collections::BTreeSet;

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, ERROR_PORT, MAIN_PORT},
    Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::expr::Expr;
use crate::support::{compile_at, holds};

/// The port items that match no case go to.
const DEFAULT_PORT: &str = "default";

/// Config of a `switch` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"cases": [{"port": "de", "condition": ".country == \"DE\""}, {"port": "eu", "condition": ".eu"}], "mode": "first"}))]
struct SwitchConfig {
    /// The cases, each an output port and the condition that sends an
    /// item there.
    #[schemars(length(min = 1))]
    cases: Vec<CaseConfig>,
    /// Whether an item goes to the first matching case or to all.
    #[serde(default)]
    mode: Mode,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(transform = concertmaster_core::node::declared_order::<Self>)]
struct CaseConfig {
    /// The output port of this case.
    #[schemars(regex(pattern = "^[A-Za-z0-9_-]+$"))]
    port: String,
    /// jq, evaluated on each item.
    #[schemars(length(min = 1))]
    condition: String,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Mode {
    /// An item goes to the first case that matches.
    #[default]
    First,
    /// An item goes to every case that matches.
    All,
}

struct Switch {
    cases: Vec<(String, Expr)>,
    mode: Mode,
}

#[async_trait]
impl Node for Switch {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let mut out = Ports::new();
        for (i, item) in input.take(MAIN_PORT).into_iter().enumerate() {
            let mut matched = false;
            for (port, condition) in &self.cases {
                if holds(condition, i, &item)? {
                    out.push(port, item.clone());
                    matched = true;
                    if self.mode == Mode::First {
                        break;
                    }
                }
            }
            if !matched {
                out.push(DEFAULT_PORT, item);
            }
        }
        Ok(out.into())
    }

    fn output_ports(&self) -> Option<Vec<String>> {
        let mut ports: Vec<String> = self.cases.iter().map(|(port, _)| port.clone()).collect();
        ports.dedup();
        ports.push(DEFAULT_PORT.into());
        Some(ports)
    }
}

fn build(config: SwitchConfig) -> Result<Switch, ConfigError> {
    let mut seen = BTreeSet::new();
    let mut cases = Vec::with_capacity(config.cases.len());
    for (i, case) in config.cases.into_iter().enumerate() {
        let at = format!("/cases/{i}/port");
        if [DEFAULT_PORT, ERROR_PORT].contains(&case.port.as_str()) {
            return Err(ConfigError::new(format!(
                "port {:?} is reserved; name the case another way",
                case.port
            ))
            .at(at));
        }
        if !seen.insert(case.port.clone()) {
            return Err(ConfigError::new(format!(
                "port {:?} is used by an earlier case; give each case its own port",
                case.port
            ))
            .at(at));
        }
        let condition = compile_at(&case.condition, &format!("/cases/{i}/condition"))?;
        cases.push((case.port, condition));
    }
    Ok(Switch {
        cases,
        mode: config.mode,
    })
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("switch", NodeCategory::Logic)
            .label("Switch")
            .icon("split")
            .description(
                "Sends each item to the port of the first case whose jq condition holds (or of \
                 every such case, in mode `all`); items no case takes go to `default`.",
            )
            .outputs([DEFAULT_PORT])
            .output_ports_from("/cases/*/port"),
        build,
    )
}

#[cfg(test)]
mod tests {
    use crate::testkit::{out, publish_error, run};
    use serde_json::json;

    fn cases() -> serde_json::Value {
        json!([
            {"port": "large", "condition": ".spend > 1000000"},
            {"port": "eu", "condition": ".region == \"EU\""}
        ])
    }

    #[tokio::test]
    async fn first_matching_case_wins_and_the_rest_go_to_default() {
        let detail = run(
            "switch",
            json!({"cases": cases()}),
            json!([
                {"id": 1, "spend": 5000000, "region": "EU"},
                {"id": 2, "spend": 10, "region": "EU"},
                {"id": 3, "spend": 10, "region": "US"}
            ]),
        )
        .await;
        let ids = |port| {
            out(&detail, port)
                .iter()
                .map(|i| i["id"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("large"), vec![json!(1)]);
        assert_eq!(ids("eu"), vec![json!(2)]);
        assert_eq!(ids("default"), vec![json!(3)]);
    }

    #[tokio::test]
    async fn mode_all_sends_an_item_to_every_matching_case() {
        let detail = run(
            "switch",
            json!({"cases": cases(), "mode": "all"}),
            json!([{"id": 1, "spend": 5000000, "region": "EU"}]),
        )
        .await;
        assert_eq!(out(&detail, "large").len(), 1);
        assert_eq!(out(&detail, "eu").len(), 1);
        assert!(out(&detail, "default").is_empty());
    }

    #[tokio::test]
    async fn duplicate_and_reserved_ports_are_refused() {
        let twice = json!({"cases": [
            {"port": "a", "condition": "true"}, {"port": "a", "condition": "false"}
        ]});
        let message = publish_error("switch", twice).await;
        assert!(message.contains("/cases/1/port"), "{message}");
        let reserved = json!({"cases": [{"port": "default", "condition": "true"}]});
        let message = publish_error("switch", reserved).await;
        assert!(message.contains("reserved"), "{message}");
    }
}
