//! Run with: cargo run --example quickstart
//!
//! A supplier onboarding workflow on the in-memory store: a risk check
//! routes the supplier to a human review (the low-risk branch is skipped),
//! the run waits for the reviewer's decision, the example delivers it, and
//! the ERP registration succeeds on its second attempt. Then the run's
//! timeline is printed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, Suspend},
    run::{NodeStatus, RunDetail},
    Engine, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome, NodeRegistry, Ports,
    RunStatus, TenantId, WorkflowDefinition,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();

    let engine = Engine::builder().registry(registry()?).build().await?;
    let tenant = TenantId::new("acme-corp");

    let definition =
        WorkflowDefinition::from_json(include_str!("workflows/supplier-onboarding.json"))?;
    let workflow = engine.publish(&tenant, definition).await?;
    println!("published {} version {}", workflow.id(), workflow.version());

    let supplier =
        json!({ "name": "Nordwind Logistics GmbH", "country": "DE", "annualSpend": 250000 });
    let run = engine.start(&workflow, supplier).await?;
    println!("started run {run}");

    let waiting = engine.settled(&tenant, run).await?;
    let detail = engine.run(&tenant, run).await?;
    println!(
        "run is {}, waiting on {:?}",
        waiting.status.as_str(),
        detail.waiting_on()
    );

    // In a host service this call sits behind the reviewer's "approve" button.
    let key = format!("review:{run}");
    engine
        .resume(
            &tenant,
            &key,
            json!({ "decision": "approved", "reviewer": "maria.keller" }),
        )
        .await?;

    let finished = engine.finished(&tenant, run).await?;
    println!("run {}\n", finished.status.as_str());
    print_timeline(&engine.run(&tenant, run).await?);
    if finished.status != RunStatus::Succeeded {
        return Err(format!(
            "the run ended {}: {:?}",
            finished.status.as_str(),
            finished.error
        )
        .into());
    }
    Ok(())
}

fn print_timeline(detail: &RunDetail) {
    let start = detail.run.created_at;
    println!(
        "{:<14} {:<10} {:>7} {:>9}  notes",
        "node", "status", "attempt", "at (ms)"
    );
    for node in &detail.nodes {
        let at = node
            .ended_at
            .map(|t| (t - start).num_milliseconds().to_string())
            .unwrap_or_else(|| "-".into());
        let mut notes = Vec::new();
        if node.status == NodeStatus::Skipped {
            notes.push("branch not taken".to_string());
        }
        if let Some(error) = &node.error {
            notes.push(format!("earlier attempt failed: {}", error.message()));
        }
        if let Some(output) = &node.output {
            if let Some(item) = output.main_items().first() {
                let shown: Vec<String> = ["decision", "erpId"]
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| format!("{k}={v}")))
                    .collect();
                if !shown.is_empty() {
                    notes.push(shown.join(" "));
                }
            }
        }
        println!(
            "{:<14} {:<10} {:>7} {:>9}  {}",
            node.node_id.as_str(),
            node.status.as_str(),
            node.attempt,
            at,
            notes.join("; ")
        );
    }
}

fn registry() -> Result<NodeRegistry, concertmaster_core::node::RegistryError> {
    let mut registry = NodeRegistry::new();
    registry.register_node(
        NodeDescriptor::new("manual", NodeCategory::Trigger)
            .label("Manual start")
            .description("Starts a run with the data it is given."),
        PassThrough,
    )?;
    registry.register_with_config(
        NodeDescriptor::new("risk_check", NodeCategory::Logic)
            .label("Risk check")
            .description("Sends suppliers above a yearly spend to review, the others on.")
            .outputs(["low", "high"]),
        |config: RiskConfig| Ok(RiskCheck(config)),
    )?;
    registry.register_node(
        NodeDescriptor::new("auto_approve", NodeCategory::Transform).label("Approve automatically"),
        AutoApprove,
    )?;
    registry.register_node(
        NodeDescriptor::new("await_review", NodeCategory::Collection)
            .label("Await review")
            .description("Waits, holding no task, until a reviewer decides.")
            .outputs(["main", "rejected"]),
        AwaitReview,
    )?;
    let erp = SimulatedErp::default();
    registry.register(
        NodeDescriptor::new("erp_register", NodeCategory::Output).label("Register in ERP"),
        move |_: &Value| Ok::<_, ConfigError>(RegisterSupplier { erp: erp.clone() }),
    )?;
    Ok(registry)
}

/// Hands its input on unchanged.
struct PassThrough;

#[async_trait]
impl Node for PassThrough {
    async fn execute(&self, _: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        Ok(NodeOutcome::Done(input))
    }
}

/// The config of `risk_check`; its JSON Schema (for the editor and for
/// publishing) is derived from it.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RiskConfig {
    /// Suppliers spending more than this a year go to review.
    #[schemars(range(min = 0))]
    review_above_spend: f64,
}

struct RiskCheck(RiskConfig);

#[async_trait]
impl Node for RiskCheck {
    async fn execute(&self, _: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let (high, low): (Vec<_>, Vec<_>) = input.take("main").into_iter().partition(|supplier| {
            supplier
                .get("annualSpend")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
                > self.0.review_above_spend
        });
        let mut out = Ports::new();
        if !high.is_empty() {
            out.extend("high", high);
        }
        if !low.is_empty() {
            out.extend("low", low);
        }
        Ok(NodeOutcome::Done(out))
    }
}

struct AutoApprove;

#[async_trait]
impl Node for AutoApprove {
    async fn execute(&self, _: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take("main");
        for item in &mut items {
            item.insert("decision".into(), json!("auto-approved"));
        }
        Ok(NodeOutcome::main(items))
    }
}

/// Suspends until `review:<run id>` is resumed with `{decision, reviewer}`.
struct AwaitReview;

#[async_trait]
impl Node for AwaitReview {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let Some(resumed) = ctx.resumed() else {
            return Ok(NodeOutcome::suspend(Suspend::until_event(format!(
                "review:{}",
                ctx.run_id()
            ))));
        };
        let decision = resumed.wakeup_payload();
        if decision["decision"] != "approved" {
            return Ok(NodeOutcome::port("rejected", input.take("main")));
        }
        let mut items = input.take("main");
        for item in &mut items {
            item.insert("decision".into(), decision["decision"].clone());
            item.insert("reviewer".into(), decision["reviewer"].clone());
        }
        Ok(NodeOutcome::main(items))
    }
}

/// Stands in for an ERP: answers 503 to the first call for a key, then
/// creates the record once per idempotency key, however often it is called.
#[derive(Clone, Default)]
struct SimulatedErp {
    records: Arc<Mutex<HashMap<String, Option<String>>>>,
}

impl SimulatedErp {
    fn create(&self, key: &str) -> Result<String, String> {
        let mut records = self
            .records
            .lock()
            .map_err(|_| "ERP state poisoned".to_string())?;
        match records.get(key) {
            None => {
                records.insert(key.to_string(), None);
                Err("ERP answered 503 Service Unavailable".into())
            }
            Some(Some(id)) => Ok(id.clone()),
            Some(None) => {
                let id = format!("BP-{:05}", 10_000 + records.len());
                records.insert(key.to_string(), Some(id.clone()));
                Ok(id)
            }
        }
    }
}

struct RegisterSupplier {
    erp: SimulatedErp,
}

#[async_trait]
impl Node for RegisterSupplier {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        let mut items = input.take("main");
        for (i, item) in items.iter_mut().enumerate() {
            let id = self
                .erp
                .create(&ctx.item_key(i))
                .map_err(NodeError::retryable)?;
            item.insert("erpId".into(), json!(id));
        }
        Ok(NodeOutcome::main(items))
    }
}
