//! Test nodes and a harness around an engine.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    node::{ConfigError, NodeCategory, Suspend},
    workflow::PublishedWorkflow,
    Engine, EngineBuilder, Item, Node, NodeContext, NodeDescriptor, NodeError, NodeOutcome,
    NodeRegistry, Ports, TenantId, WorkflowDefinition,
};
use serde::Deserialize;
use serde_json::{json, Value};

/// What test nodes saw: the order nodes ran in, attempts per node, concurrency.
#[derive(Default)]
pub(crate) struct Log {
    pub(crate) order: Mutex<Vec<String>>,
    pub(crate) attempts: Mutex<HashMap<String, u32>>,
    pub(crate) keys: Mutex<Vec<String>>,
    pub(crate) running: AtomicUsize,
    pub(crate) max_running: AtomicUsize,
}

impl Log {
    pub(crate) fn order(&self) -> Vec<String> {
        self.order.lock().expect("log lock").clone()
    }

    fn enter(&self, ctx: &NodeContext) {
        self.order
            .lock()
            .expect("log lock")
            .push(ctx.node_id().to_string());
        *self
            .attempts
            .lock()
            .expect("log lock")
            .entry(ctx.node_id().to_string())
            .or_default() += 1;
        self.keys
            .lock()
            .expect("log lock")
            .push(ctx.idempotency_key().to_string());
    }

    pub(crate) fn attempts(&self, node: &str) -> u32 {
        self.attempts
            .lock()
            .expect("log lock")
            .get(node)
            .copied()
            .unwrap_or(0)
    }
}

pub(crate) fn item(value: Value) -> Item {
    match value {
        Value::Object(map) => map,
        other => panic!("test item must be an object, got {other}"),
    }
}

/// Passes its input on, after an optional pause; notes when it ran.
struct Pass {
    log: Arc<Log>,
    pause_ms: u64,
}

#[async_trait]
impl Node for Pass {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        let now = self.log.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.log.max_running.fetch_max(now, Ordering::SeqCst);
        if self.pause_ms > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(self.pause_ms)) => {}
                () = ctx.cancellation().cancelled() => {}
            }
        }
        self.log.running.fetch_sub(1, Ordering::SeqCst);
        let mut items = Vec::new();
        for (_, port_items) in input.iter() {
            items.extend(port_items.iter().cloned());
        }
        if items.is_empty() {
            items.push(item(json!({})));
        }
        for it in &mut items {
            let trail = it.entry("trail").or_insert_with(|| json!([]));
            if let Value::Array(trail) = trail {
                trail.push(json!(ctx.node_id()));
            }
        }
        Ok(NodeOutcome::main(items))
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PassConfig {
    #[serde(default)]
    pause_ms: u64,
}

/// Sends every item to the port named in its config.
struct Branch {
    log: Arc<Log>,
    take: String,
}

#[async_trait]
impl Node for Branch {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        Ok(NodeOutcome::port(self.take.clone(), input.take("main")))
    }
}

/// Fails (retryably, or not) for its first `failures` attempts, then passes.
struct Flaky {
    log: Arc<Log>,
    failures: u32,
    fatal: bool,
}

#[async_trait]
impl Node for Flaky {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        if ctx.attempt() <= self.failures {
            let message = format!("attempt {} failed", ctx.attempt());
            return Err(if self.fatal {
                NodeError::fatal(message)
            } else {
                NodeError::retryable(message)
            }
            .with_details(json!({"attempt": ctx.attempt()})));
        }
        Ok(NodeOutcome::main(input.take("main")))
    }
}

/// Waits for the event `<prefix>:<run id>` (or a deadline), then emits the payload.
struct Await {
    log: Arc<Log>,
    prefix: String,
    deadline_s: Option<i64>,
}

#[async_trait]
impl Node for Await {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        match ctx.resumed() {
            None => {
                let mut suspend = Suspend::until_event(format!("{}:{}", self.prefix, ctx.run_id()))
                    .with_state(json!({"items": input.main_items().len()}));
                if let Some(s) = self.deadline_s {
                    suspend = suspend.with_deadline(ctx.now() + chrono::Duration::seconds(s));
                }
                Ok(NodeOutcome::suspend(suspend))
            }
            Some(resumed) => {
                let mut items = input.take("main");
                for it in &mut items {
                    it.insert("payload".into(), resumed.wakeup_payload().clone());
                    it.insert("timedOut".into(), json!(resumed.by_timer()));
                    it.insert("state".into(), resumed.state.clone());
                }
                Ok(NodeOutcome::main(items))
            }
        }
    }
}

/// Sleeps durably for `seconds` of engine time.
struct Delay {
    log: Arc<Log>,
    seconds: i64,
}

#[async_trait]
impl Node for Delay {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        if ctx.resumed().is_some() {
            return Ok(NodeOutcome::main(input.take("main")));
        }
        Ok(NodeOutcome::suspend(Suspend::until_time(
            ctx.now() + chrono::Duration::seconds(self.seconds),
        )))
    }
}

/// Concatenates its `left` and `right` inputs.
struct Join {
    log: Arc<Log>,
    join: concertmaster_core::node::Join,
}

#[async_trait]
impl Node for Join {
    async fn execute(&self, ctx: &NodeContext, mut input: Ports) -> Result<NodeOutcome, NodeError> {
        self.log.enter(ctx);
        let mut items = input.take("left");
        items.extend(input.take("right"));
        Ok(NodeOutcome::main(items))
    }

    fn join(&self) -> concertmaster_core::node::Join {
        self.join
    }
}

/// Suspends on `hold:<run>:<node>` the first time, then behaves as `pass`.
struct Hold {
    pass: Pass,
}

#[async_trait]
impl Node for Hold {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        if ctx.resumed().is_none() {
            return Ok(NodeOutcome::suspend(Suspend::until_event(format!(
                "hold:{}:{}",
                ctx.run_id(),
                ctx.node_id()
            ))));
        }
        self.pass.execute(ctx, input).await
    }
}

/// Panics.
struct Panic;

#[async_trait]
impl Node for Panic {
    async fn execute(&self, _: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        panic!("test node panics on purpose")
    }
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct AwaitConfig {
    #[schemars(length(min = 1))]
    prefix: String,
    #[serde(default, rename = "deadlineS")]
    deadline_s: Option<i64>,
}

/// A registry of the test nodes, all writing to `log`.
pub(crate) fn registry(log: &Arc<Log>) -> NodeRegistry {
    let mut registry = NodeRegistry::new();
    let l = Arc::clone(log);
    registry
        .register_with_config(
            NodeDescriptor::new("start", NodeCategory::Trigger),
            move |c: PassConfig| {
                Ok(Pass {
                    log: Arc::clone(&l),
                    pause_ms: c.pause_ms,
                })
            },
        )
        .expect("start registers");
    let l = Arc::clone(log);
    registry
        .register_with_config(
            NodeDescriptor::new("pass", NodeCategory::Transform),
            move |c: PassConfig| {
                Ok(Pass {
                    log: Arc::clone(&l),
                    pause_ms: c.pause_ms,
                })
            },
        )
        .expect("pass registers");
    let l = Arc::clone(log);
    registry
        .register_with_config(
            NodeDescriptor::new("act", NodeCategory::Output).with_side_effects(),
            move |c: PassConfig| {
                Ok(Pass {
                    log: Arc::clone(&l),
                    pause_ms: c.pause_ms,
                })
            },
        )
        .expect("act registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("branch", NodeCategory::Logic)
                .outputs(["true", "false"])
                .config_schema(json!({
                    "type": "object",
                    "properties": {"take": {"enum": ["true", "false"]}},
                    "required": ["take"]
                })),
            move |config: &Value| {
                let take = config["take"]
                    .as_str()
                    .ok_or_else(|| ConfigError::new("take must be a string").at("/take"))?;
                Ok(Branch {
                    log: Arc::clone(&l),
                    take: take.to_string(),
                })
            },
        )
        .expect("branch registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("flaky", NodeCategory::Output).config_schema(json!({
                "type": "object",
                "properties": {"failures": {"type": "integer", "minimum": 0}, "fatal": {"type": "boolean"}},
                "required": ["failures"]
            })),
            move |config: &Value| {
                Ok(Flaky {
                    log: Arc::clone(&l),
                    failures: config["failures"].as_u64().unwrap_or(0) as u32,
                    fatal: config["fatal"].as_bool().unwrap_or(false),
                })
            },
        )
        .expect("flaky registers");
    let l = Arc::clone(log);
    registry
        .register_with_config(
            NodeDescriptor::new("await", NodeCategory::Collection),
            move |c: AwaitConfig| {
                Ok(Await {
                    log: Arc::clone(&l),
                    prefix: c.prefix,
                    deadline_s: c.deadline_s,
                })
            },
        )
        .expect("await registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("delay", NodeCategory::Logic).config_schema(json!({
                "type": "object", "properties": {"seconds": {"type": "integer", "minimum": 0}}, "required": ["seconds"]
            })),
            move |config: &Value| {
                Ok(Delay {
                    log: Arc::clone(&l),
                    seconds: config["seconds"].as_i64().unwrap_or(0),
                })
            },
        )
        .expect("delay registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("join", NodeCategory::Logic).inputs(["left", "right"]),
            move |_: &Value| {
                Ok(Join {
                    log: Arc::clone(&l),
                    join: concertmaster_core::node::Join::All,
                })
            },
        )
        .expect("join registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("first", NodeCategory::Logic).inputs(["left", "right"]),
            move |_: &Value| {
                Ok(Join {
                    log: Arc::clone(&l),
                    join: concertmaster_core::node::Join::First,
                })
            },
        )
        .expect("first registers");
    registry
        .register_node(NodeDescriptor::new("panic", NodeCategory::Logic), Panic)
        .expect("panic registers");
    let l = Arc::clone(log);
    registry
        .register(
            NodeDescriptor::new("hold", NodeCategory::Collection),
            move |_: &Value| {
                Ok(Hold {
                    pass: Pass {
                        log: Arc::clone(&l),
                        pause_ms: 0,
                    },
                })
            },
        )
        .expect("hold registers");
    registry
}

/// An engine on the test nodes, and the tenant tests act as.
pub(crate) struct Harness {
    pub(crate) engine: Engine,
    pub(crate) log: Arc<Log>,
    pub(crate) tenant: TenantId,
}

impl Harness {
    pub(crate) async fn new() -> Self {
        Self::with(|b| b).await
    }

    pub(crate) async fn with(configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Self {
        let log = Arc::new(Log::default());
        let builder = Engine::builder()
            .registry(registry(&log))
            .default_node_timeout(Some(Duration::from_secs(10)));
        let engine = configure(builder).build().await.expect("engine builds");
        Self {
            engine,
            log,
            tenant: TenantId::new("acme"),
        }
    }

    pub(crate) async fn publish(&self, def: Value) -> PublishedWorkflow {
        let def = WorkflowDefinition::from_value(def).expect("test workflow parses");
        self.engine
            .publish(&self.tenant, def)
            .await
            .expect("test workflow publishes")
    }
}

/// A workflow JSON from `nodes` (id, type, config) and `edges` (source[:port], target[:port]).
pub(crate) fn workflow(id: &str, nodes: &[(&str, &str, Value)], edges: &[(&str, &str)]) -> Value {
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|(id, ty, config)| json!({"id": id, "type": ty, "config": config}))
        .collect();
    let edges: Vec<Value> = edges
        .iter()
        .map(|(source, target)| {
            let (s, sp) = source.split_once(':').unwrap_or((source, "main"));
            let (t, tp) = target.split_once(':').unwrap_or((target, "main"));
            json!({"source": s, "sourcePort": sp, "target": t, "targetPort": tp})
        })
        .collect();
    json!({"id": id, "name": id, "nodes": nodes, "edges": edges})
}
