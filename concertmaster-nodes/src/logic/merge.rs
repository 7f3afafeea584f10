//! `merge`: joins two branches once both have resolved: appends their
//! items, pairs them by position or by a key field, or picks one branch.

use std::collections::HashMap;

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, Join, NodeCategory, PortSpec, RegistryError},
    Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::support::{check_pointer, get_pointer};

const INPUT1: &str = "input1";
const INPUT2: &str = "input2";

/// Config of a `merge` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"mode": "combineByField", "field1": "/supplierId", "field2": "/BusinessPartner"}))]
struct MergeConfig {
    /// How the two inputs' items become one list.
    #[serde(default)]
    mode: Mode,
    /// `combineByField`: the key in `input1` items (JSON pointer).
    #[schemars(example = "/supplierId")]
    field1: Option<String>,
    /// `combineByField`: the key in `input2` items (JSON pointer).
    #[schemars(example = "/BusinessPartner")]
    field2: Option<String>,
    /// `combineByPosition` / `combineByField`: keep items without a partner.
    #[serde(default)]
    keep_unmatched: bool,
    /// `chooseBranch`: which input goes on.
    output: Option<Branch>,
    /// Start when both inputs resolved (`all`), or on the first with data.
    #[serde(default)]
    wait: Wait,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Wait {
    #[default]
    All,
    First,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Branch {
    Input1,
    Input2,
}

#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
enum Mode {
    /// `input1`'s items, then `input2`'s.
    #[default]
    Append,
    /// Item i of `input1` with item i of `input2`, fields of `input2` winning.
    CombineByPosition,
    /// Items of `input1` with the `input2` items whose key equals theirs.
    CombineByField,
    /// The items of one input only.
    ChooseBranch,
}

struct Merge {
    how: How,
    join: Join,
}

enum How {
    Append,
    ByPosition {
        keep_unmatched: bool,
    },
    ByField {
        field1: String,
        field2: String,
        keep_unmatched: bool,
    },
    Choose {
        input: &'static str,
    },
}

fn combined(left: &Item, right: &Item) -> Item {
    let mut item = left.clone();
    item.extend(right.iter().map(|(k, v)| (k.clone(), v.clone())));
    item
}

/// A key as text, so that `7` and `"7"` from different systems match.
fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[async_trait]
impl Node for Merge {
    async fn execute(
        &self,
        _ctx: &NodeContext,
        mut input: Ports,
    ) -> Result<NodeOutcome, NodeError> {
        let left = input.take(INPUT1);
        let right = input.take(INPUT2);
        let items = match &self.how {
            How::Append => left.into_iter().chain(right).collect(),
            How::Choose { input } => {
                if *input == INPUT1 {
                    left
                } else {
                    right
                }
            }
            How::ByPosition { keep_unmatched } => {
                let pairs = left.len().max(right.len());
                (0..pairs)
                    .filter_map(|i| match (left.get(i), right.get(i)) {
                        (Some(l), Some(r)) => Some(combined(l, r)),
                        (Some(one), None) | (None, Some(one)) if *keep_unmatched => {
                            Some(one.clone())
                        }
                        _ => None,
                    })
                    .collect()
            }
            How::ByField {
                field1,
                field2,
                keep_unmatched,
            } => {
                let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
                for (i, item) in right.iter().enumerate() {
                    if let Some(key) = get_pointer(item, field2).and_then(key_text) {
                        by_key.entry(key).or_default().push(i);
                    }
                }
                let mut used = vec![false; right.len()];
                let mut items = Vec::new();
                for l in &left {
                    let partners = get_pointer(l, field1)
                        .and_then(key_text)
                        .and_then(|key| by_key.get(&key));
                    match partners {
                        Some(partners) => {
                            for &r in partners {
                                used[r] = true;
                                items.push(combined(l, &right[r]));
                            }
                        }
                        None if *keep_unmatched => items.push(l.clone()),
                        None => {}
                    }
                }
                if *keep_unmatched {
                    items.extend(
                        right
                            .iter()
                            .zip(&used)
                            .filter(|(_, used)| !**used)
                            .map(|(r, _)| r.clone()),
                    );
                }
                items
            }
        };
        Ok(NodeOutcome::main(items))
    }

    fn join(&self) -> Join {
        self.join
    }
}

fn build(config: MergeConfig) -> Result<Merge, ConfigError> {
    let join = match config.wait {
        Wait::All => Join::All,
        Wait::First if matches!(config.mode, Mode::Append) => Join::First,
        Wait::First => {
            return Err(ConfigError::new(
                "wait \"first\" goes on with one input's items and cannot combine both; use mode \"append\" with it",
            )
            .at("/wait"))
        }
    };
    let how = match config.mode {
        Mode::Append => How::Append,
        Mode::CombineByPosition => How::ByPosition {
            keep_unmatched: config.keep_unmatched,
        },
        Mode::CombineByField => {
            let (Some(field1), Some(field2)) = (config.field1, config.field2) else {
                return Err(ConfigError::new(
                    "mode combineByField needs `field1` and `field2`, the key of each input",
                ));
            };
            check_pointer(&field1, "/field1")?;
            check_pointer(&field2, "/field2")?;
            How::ByField {
                field1,
                field2,
                keep_unmatched: config.keep_unmatched,
            }
        }
        Mode::ChooseBranch => match config.output {
            Some(Branch::Input1) => How::Choose { input: INPUT1 },
            Some(Branch::Input2) => How::Choose { input: INPUT2 },
            None => {
                return Err(ConfigError::new(
                    "mode chooseBranch needs `output`: \"input1\" or \"input2\"",
                )
                .at("/output"))
            }
        },
    };
    Ok(Merge { how, join })
}

pub(crate) fn register(registry: &mut NodeRegistry) -> Result<(), RegistryError> {
    registry.register_with_config(
        NodeDescriptor::new("merge", NodeCategory::Logic)
            .label("Merge")
            .icon("merge")
            .description(
                "Waits until both inputs have resolved, then appends their items, pairs them \
                 by position or by a key field, or passes one input on; with wait `first`, \
                 goes on with the first input that brings items.",
            )
            .inputs([
                PortSpec::new(INPUT1).labelled("Input 1"),
                PortSpec::new(INPUT2).labelled("Input 2"),
            ]),
        build,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::items;
    use serde_json::json;

    async fn merge(config: Value, left: Value, right: Value) -> Vec<Value> {
        let config: MergeConfig = serde_json::from_value(config).unwrap();
        let node = build(config).unwrap();
        let ctx = NodeContext::new("t", "w", concertmaster_core::RunId::new(), "n");
        let input = Ports::new()
            .with(INPUT1, items(left))
            .with(INPUT2, items(right));
        match node.execute(&ctx, input).await.unwrap() {
            NodeOutcome::Done(ports) => ports
                .main_items()
                .iter()
                .cloned()
                .map(Value::Object)
                .collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn appends_then_pairs_by_position() {
        let l = json!([{"a": 1}, {"a": 2}]);
        let r = json!([{"b": 1}]);
        assert_eq!(
            merge(json!({}), l.clone(), r.clone()).await,
            vec![json!({"a": 1}), json!({"a": 2}), json!({"b": 1})]
        );
        assert_eq!(
            merge(json!({"mode": "combineByPosition"}), l.clone(), r.clone()).await,
            vec![json!({"a": 1, "b": 1})]
        );
        assert_eq!(
            merge(
                json!({"mode": "combineByPosition", "keepUnmatched": true}),
                l,
                r
            )
            .await,
            vec![json!({"a": 1, "b": 1}), json!({"a": 2})]
        );
    }

    #[tokio::test]
    async fn joins_by_key_field_matching_numbers_and_strings() {
        let suppliers = json!([{"id": 7, "name": "ACME"}, {"id": 8, "name": "Globex"}]);
        let erp =
            json!([{"BusinessPartner": "7", "bp": "BP-7"}, {"BusinessPartner": "9", "bp": "BP-9"}]);
        let config =
            json!({"mode": "combineByField", "field1": "/id", "field2": "/BusinessPartner"});
        assert_eq!(
            merge(config, suppliers.clone(), erp.clone()).await,
            vec![json!({"id": 7, "name": "ACME", "BusinessPartner": "7", "bp": "BP-7"})]
        );
        let config = json!({"mode": "combineByField", "field1": "/id", "field2": "/BusinessPartner", "keepUnmatched": true});
        assert_eq!(merge(config, suppliers, erp).await.len(), 3);
    }

    #[tokio::test]
    async fn chooses_a_branch() {
        let config = json!({"mode": "chooseBranch", "output": "input2"});
        assert_eq!(
            merge(config, json!([{"a": 1}]), json!([{"b": 2}])).await,
            vec![json!({"b": 2})]
        );
    }

    #[test]
    fn incomplete_modes_are_refused() {
        let config: MergeConfig =
            serde_json::from_value(json!({"mode": "combineByField", "field1": "/id"})).unwrap();
        assert!(build(config).err().unwrap().to_string().contains("field2"));
        let config: MergeConfig = serde_json::from_value(json!({"mode": "chooseBranch"})).unwrap();
        assert!(build(config).is_err());
    }

    #[tokio::test]
    async fn wait_first_goes_on_with_the_first_branch_that_brings_items() {
        use concertmaster_core::testing::TestEngine;
        let test = TestEngine::new(crate::registry()).await.unwrap();
        let def = concertmaster_core::WorkflowDefinition::from_value(json!({
            "id": "m", "name": "m",
            "nodes": [
                {"id": "start", "type": "manual"},
                {"id": "slow", "type": "delay", "config": {"duration": "1h"}},
                {"id": "fast", "type": "jq", "config": {"expression": "{fast: true}"}},
                {"id": "first", "type": "merge", "config": {"wait": "first"}},
                {"id": "after", "type": "jq", "config": {"expression": ". + {after: true}"}}
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "slow"},
                {"id": "e2", "source": "start", "target": "fast"},
                {"id": "e3", "source": "slow", "target": "first", "targetPort": "input1"},
                {"id": "e4", "source": "fast", "target": "first", "targetPort": "input2"},
                {"id": "e5", "source": "first", "target": "after"}
            ]
        }))
        .unwrap();
        let workflow = test.publish(def).await.unwrap();
        let run = test
            .engine
            .start(&workflow, json!({"id": 1}))
            .await
            .unwrap();
        assert_eq!(
            test.settled(run).await.unwrap().status,
            concertmaster_core::RunStatus::Waiting
        );
        let detail = test.engine.run(&test.tenant, run).await.unwrap();
        assert_eq!(
            detail.output("after").unwrap().main_items()[0],
            *json!({"fast": true, "after": true}).as_object().unwrap(),
            "the merge did not wait for the slow branch"
        );
        test.advance(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        let run = test.engine.finished(&test.tenant, run).await.unwrap();
        assert_eq!(run.status, concertmaster_core::RunStatus::Succeeded);
        let detail = test.engine.run(&test.tenant, run.id).await.unwrap();
        assert_eq!(detail.node("first").unwrap().attempt, 1, "it ran once");
        assert_eq!(detail.output("first").unwrap().main_items().len(), 1);
    }

    #[test]
    fn wait_first_only_appends() {
        let config: MergeConfig =
            serde_json::from_value(json!({"mode": "combineByPosition", "wait": "first"})).unwrap();
        assert!(build(config).err().unwrap().to_string().contains("append"));
    }

    #[tokio::test]
    async fn waits_for_both_branches_in_a_workflow() {
        use concertmaster_core::testing::TestEngine;
        let test = TestEngine::new(crate::registry()).await.unwrap();
        let def = concertmaster_core::WorkflowDefinition::from_value(json!({
            "id": "m", "name": "m",
            "nodes": [
                {"id": "start", "type": "manual"},
                {"id": "slow", "type": "delay", "config": {"duration": "1h"}},
                {"id": "fast", "type": "jq", "config": {"expression": "{fast: true}"}},
                {"id": "join", "type": "merge", "config": {"mode": "combineByPosition"}}
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "slow"},
                {"id": "e2", "source": "start", "target": "fast"},
                {"id": "e3", "source": "slow", "target": "join", "targetPort": "input1"},
                {"id": "e4", "source": "fast", "target": "join", "targetPort": "input2"}
            ]
        }))
        .unwrap();
        let workflow = test.publish(def).await.unwrap();
        let run = test
            .engine
            .start(&workflow, json!({"id": 1}))
            .await
            .unwrap();
        assert_eq!(
            test.settled(run).await.unwrap().status,
            concertmaster_core::RunStatus::Waiting
        );
        test.advance(std::time::Duration::from_secs(3600))
            .await
            .unwrap();
        test.settled(run).await.unwrap();
        let detail = test.engine.run(&test.tenant, run).await.unwrap();
        assert_eq!(
            detail.output("join").unwrap().main_items()[0],
            *json!({"id": 1, "fast": true}).as_object().unwrap()
        );
    }
}
