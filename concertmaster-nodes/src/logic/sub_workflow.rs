//! `sub_workflow`: runs another published workflow with the items as its
//! trigger, and goes on with what the child's last nodes emitted. The
//! parent waits durably, also while the child waits for people; the
//! engine wakes it when the child ends (`Engine::start_child`), and a
//! child that fails fails the node. Cancelling the parent cancels the child.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, RegistryError, Suspend, MAIN_PORT},
    run::{NodeStatus, RunDetail, RunParent},
    Engine, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunId, RunStatus, WorkflowId,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::duration::Interval;

/// How often a waiting parent looks at its child on its own, in case the
/// wake-up at the child's end was lost (the process stopped in between).
const DEFAULT_CHECK_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Lets `sub_workflow` nodes start runs: they need the engine, which is
/// built after the registry that holds them.
///
/// ```
/// use concertmaster_core::Engine;
/// use concertmaster_nodes::SubWorkflows;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let subs = SubWorkflows::new();
/// let mut registry = concertmaster_nodes::registry();
/// subs.register_nodes(&mut registry)?;
/// let engine = Engine::builder().registry(registry).build().await?;
/// subs.attach(&engine);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct SubWorkflows {
    engine: Arc<OnceLock<Engine>>,
}

impl std::fmt::Debug for SubWorkflows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubWorkflows")
            .field("attached", &self.engine.get().is_some())
            .finish()
    }
}

impl SubWorkflows {
    /// Not attached to an engine yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the `sub_workflow` node.
    pub fn register_nodes(&self, registry: &mut NodeRegistry) -> Result<(), RegistryError> {
        register(registry, self)
    }

    /// Gives the nodes the engine they start child runs on; the first call
    /// wins.
    pub fn attach(&self, engine: &Engine) {
        let _ = self.engine.set(engine.clone());
    }
}

/// Config of a `sub_workflow` node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(example = serde_json::json!({"workflowId": "supplier-check", "checkEvery": "5m"}))]
struct SubWorkflowConfig {
    /// The published workflow to run.
    #[schemars(length(min = 1))]
    workflow_id: String,
    /// A fixed version; the latest published when absent.
    #[schemars(range(min = 1))]
    version: Option<u32>,
    /// `false`: start the child and go on at once with its run id.
    #[serde(default = "yes")]
    wait: bool,
    /// How often the parent looks at the child on its own.
    #[serde(default = "every_minute")]
    check_every: Interval,
}

fn yes() -> bool {
    true
}

fn every_minute() -> Interval {
    Interval(DEFAULT_CHECK_EVERY)
}

struct SubWorkflow {
    subs: SubWorkflows,
    workflow: WorkflowId,
    version: Option<u32>,
    wait: bool,
    check_every: chrono::Duration,
}

/// What the child's last nodes (those without successors) emitted on
/// `main`, in node order.
fn leaf_items(detail: &RunDetail, leaves: &[String]) -> Vec<Item> {
    detail
        .nodes
        .iter()
        .filter(|n| n.status == NodeStatus::Succeeded && leaves.contains(&n.node_id.to_string()))
        .filter_map(|n| n.output.as_ref())
        .flat_map(|ports| ports.get(MAIN_PORT).to_vec())
        .collect()
}

#[async_trait]
impl Node for SubWorkflow {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let engine = self.subs.engine.get().ok_or_else(|| {
            NodeError::fatal(
                "sub_workflow has no engine: call SubWorkflows::attach(&engine) after building it",
            )
        })?;
        let tenant = ctx.tenant();
        let child = match ctx.resumed() {
            Some(resumed) => serde_json::from_value::<RunId>(resumed.state["child"].clone())
                .map_err(|err| NodeError::fatal(format!("lost track of the child run: {err}")))?,
            None => {
                let workflow = engine
                    .workflow(tenant, &self.workflow, self.version)
                    .await
                    .map_err(|err| {
                        NodeError::fatal(format!("sub-workflow {}: {err}", self.workflow))
                    })?;
                let items: Vec<Value> = input
                    .take(MAIN_PORT)
                    .into_iter()
                    .map(Value::Object)
                    .collect();
                let (child, _) = engine
                    .start_child(&workflow, ctx, Value::Array(items))
                    .await
                    .map_err(|err| {
                        NodeError::retryable(format!(
                            "sub-workflow {} did not start: {err}",
                            self.workflow
                        ))
                    })?;
                if !self.wait {
                    let mut item = Item::new();
                    item.insert("childRun".into(), json!(child));
                    return Ok(NodeOutcome::main(vec![item]));
                }
                child
            }
        };
        let detail = engine
            .run(tenant, child)
            .await
            .map_err(|err| NodeError::retryable(format!("child run {child}: {err}")))?;
        match detail.run.status {
            RunStatus::Succeeded => {
                let workflow = engine
                    .workflow(
                        tenant,
                        &detail.run.workflow_id,
                        Some(detail.run.workflow_version),
                    )
                    .await
                    .map_err(|err| NodeError::retryable(err.to_string()))?;
                let def = workflow.definition();
                let leaves: Vec<String> = def
                    .nodes
                    .iter()
                    .filter(|n| !def.edges.iter().any(|e| e.source == n.id))
                    .map(|n| n.id.to_string())
                    .collect();
                Ok(NodeOutcome::main(leaf_items(&detail, &leaves)))
            }
            RunStatus::Failed | RunStatus::Cancelled => Err(NodeError::fatal(format!(
                "sub-workflow {} run {child} {}: {}",
                self.workflow,
                detail.run.status.as_str(),
                detail.run.error.unwrap_or_default()
            ))
            .with_details(json!({ "childRun": child }))),
            _ => {
                let parent = RunParent {
                    run: ctx.run_id(),
                    node: ctx.node_id().clone(),
                };
                Ok(NodeOutcome::suspend(
                    Suspend::until_event(parent.wait_key())
                        .with_deadline(ctx.now() + self.check_every)
                        .with_state(json!({ "child": child })),
                ))
            }
        }
    }
}

fn register(registry: &mut NodeRegistry, subs: &SubWorkflows) -> Result<(), RegistryError> {
    let subs = subs.clone();
    registry.register_with_config(
        NodeDescriptor::new("sub_workflow", NodeCategory::Logic)
            .label("Sub-workflow")
            .icon("workflow")
            .description(
                "Runs another published workflow with the items as its trigger and goes on \
                 with what its last nodes emitted; the parent waits durably, also while the \
                 child waits for people. A failed child fails this node.",
            ),
        move |config: SubWorkflowConfig| -> Result<SubWorkflow, ConfigError> {
            Ok(SubWorkflow {
                subs: subs.clone(),
                workflow: WorkflowId::new(config.workflow_id),
                version: config.version,
                wait: config.wait,
                check_every: config.check_every.0,
            })
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use concertmaster_core::{clock::ManualClock, TenantId, WorkflowDefinition};
    use std::time::Duration;

    async fn setup() -> (Engine, ManualClock, TenantId) {
        let clock = ManualClock::default();
        let subs = SubWorkflows::new();
        let mut registry = crate::registry();
        subs.register_nodes(&mut registry).unwrap();
        let engine = Engine::builder()
            .registry(registry)
            .clock(clock.clone())
            .timer_poll_interval(Duration::from_secs(3600))
            .build()
            .await
            .unwrap();
        subs.attach(&engine);
        (engine, clock, TenantId::new("acme"))
    }

    async fn publish(engine: &Engine, tenant: &TenantId, def: Value) {
        engine
            .publish(tenant, WorkflowDefinition::from_value(def).unwrap())
            .await
            .unwrap();
    }

    fn parent(child: &str) -> Value {
        json!({
            "id": "parent", "name": "Parent",
            "nodes": [
                {"id": "start", "type": "manual"},
                {"id": "sub", "type": "sub_workflow", "config": {"workflowId": child}},
                {"id": "after", "type": "jq", "config": {"expression": ". + {parent: true}"}}
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "sub"},
                {"id": "e2", "source": "sub", "target": "after"}
            ]
        })
    }

    #[tokio::test]
    async fn the_childs_last_outputs_reach_the_parent_also_after_a_wait() {
        let (engine, clock, tenant) = setup().await;
        publish(
            &engine,
            &tenant,
            json!({
                "id": "child", "name": "Child",
                "nodes": [
                    {"id": "in", "type": "manual"},
                    {"id": "pause", "type": "delay", "config": {"duration": "2h"}},
                    {"id": "shape", "type": "jq", "config": {"expression": "{child: .n}"}}
                ],
                "edges": [
                    {"id": "e1", "source": "in", "target": "pause"},
                    {"id": "e2", "source": "pause", "target": "shape"}
                ]
            }),
        )
        .await;
        publish(&engine, &tenant, parent("child")).await;
        let workflow = engine
            .workflow(&tenant, &"parent".into(), None)
            .await
            .unwrap();
        let run = engine
            .start(&workflow, json!([{"n": 1}, {"n": 2}]))
            .await
            .unwrap();
        assert_eq!(
            engine.settled(&tenant, run).await.unwrap().status,
            RunStatus::Waiting
        );

        clock.advance(Duration::from_secs(2 * 3600));
        engine.fire_due_timers().await.unwrap();
        let run = engine.finished(&tenant, run).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        let detail = engine.run(&tenant, run.id).await.unwrap();
        let out: Vec<Value> = detail
            .output("after")
            .unwrap()
            .main_items()
            .iter()
            .cloned()
            .map(Value::Object)
            .collect();
        assert_eq!(
            out,
            vec![
                json!({"child": 1, "parent": true}),
                json!({"child": 2, "parent": true})
            ]
        );
        let runs = engine
            .runs(&tenant, &concertmaster_core::run::RunFilter::all())
            .await
            .unwrap();
        assert_eq!(runs.len(), 2, "one child run, started once");
    }

    #[tokio::test]
    async fn a_failing_child_fails_the_node_naming_it() {
        let (engine, _clock, tenant) = setup().await;
        publish(&engine, &tenant, json!({
            "id": "broken", "name": "Broken",
            "nodes": [
                {"id": "in", "type": "manual"},
                {"id": "shape", "type": "map_fields", "config": {"mappings": [{"to": "/x", "from": "/missing", "required": true}]}}
            ],
            "edges": [{"id": "e1", "source": "in", "target": "shape"}]
        }))
        .await;
        publish(&engine, &tenant, parent("broken")).await;
        let workflow = engine
            .workflow(&tenant, &"parent".into(), None)
            .await
            .unwrap();
        let run = engine.start(&workflow, json!({"n": 1})).await.unwrap();
        let run = engine.finished(&tenant, run).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("sub-workflow broken run") && error.contains("failed"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_unknown_child_workflow_fails_clearly() {
        let (engine, _clock, tenant) = setup().await;
        publish(&engine, &tenant, parent("nowhere")).await;
        let workflow = engine
            .workflow(&tenant, &"parent".into(), None)
            .await
            .unwrap();
        let run = engine.start(&workflow, json!({"n": 1})).await.unwrap();
        let run = engine.finished(&tenant, run).await.unwrap();
        assert!(run
            .error
            .unwrap_or_default()
            .contains("sub-workflow nowhere"));
    }
}
