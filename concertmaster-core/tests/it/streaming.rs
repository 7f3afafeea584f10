//! Streaming edges: a producer and a `Join::Stream` consumer run at once
//! through a bounded queue, and are one unit for retries, recovery and
//! re-runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use concertmaster_core::{
    node::{Join, NodeCategory, Suspend},
    run::{NodeStatus, RerunFrom, RerunVersion},
    validate::IssueKind,
    workflow::PublishedWorkflow,
    Engine, EngineBuilder, InMemoryStore, Node, NodeContext, NodeDescriptor, NodeError,
    NodeOutcome, NodeRegistry, Ports, RunId, RunStatus, TenantId, WorkflowDefinition,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::support::{registry, workflow, Log};

/// What the streaming test nodes saw.
#[derive(Default)]
struct Probe {
    /// Items whose `emit` returned.
    sent: AtomicUsize,
    /// Items `next_item` handed out.
    received: AtomicUsize,
    /// Most items sent and not yet received at any moment.
    most_ahead: AtomicUsize,
    /// Executions of `produce` and `consume`, all attempts.
    produced: AtomicUsize,
    consumed: AtomicUsize,
    /// Set once the consumer read an item while the producer still ran.
    overlapped: AtomicBool,
    producing: AtomicBool,
}

impl Probe {
    fn note_ahead(&self) {
        let ahead = self
            .sent
            .load(Ordering::SeqCst)
            .saturating_sub(self.received.load(Ordering::SeqCst));
        self.most_ahead.fetch_max(ahead, Ordering::SeqCst);
    }
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
struct ProduceConfig {
    count: usize,
    /// The port to send on (default `main`).
    port: Option<String>,
    /// Return the items instead of emitting them.
    returns: bool,
    /// Fail on this attempt after sending `fail_after` items.
    fail_on_attempt: Option<u32>,
    fail_after: usize,
    fatal: bool,
}

/// Sends `count` items `{n}` down its port.
struct Produce {
    probe: Arc<Probe>,
    config: ProduceConfig,
}

#[async_trait]
impl Node for Produce {
    async fn execute(&self, ctx: &NodeContext, _input: Ports) -> Result<NodeOutcome, NodeError> {
        self.probe.produced.fetch_add(1, Ordering::SeqCst);
        self.probe.producing.store(true, Ordering::SeqCst);
        let port = self.config.port.as_deref().unwrap_or("main");
        let mut returned = Vec::new();
        for n in 0..self.config.count {
            if self.config.fail_on_attempt == Some(ctx.attempt()) && n == self.config.fail_after {
                self.probe.producing.store(false, Ordering::SeqCst);
                return Err(if self.config.fatal {
                    NodeError::fatal(format!("source gone after {n} items"))
                } else {
                    NodeError::retryable(format!("source hiccup after {n} items"))
                });
            }
            let item = crate::support::item(json!({ "n": n }));
            if self.config.returns {
                returned.push(item);
                continue;
            }
            ctx.emit(port, item).await?;
            self.probe.sent.fetch_add(1, Ordering::SeqCst);
            self.probe.note_ahead();
        }
        self.probe.producing.store(false, Ordering::SeqCst);
        Ok(NodeOutcome::port(port, returned))
    }

    fn output_ports(&self) -> Option<Vec<String>> {
        Some(vec!["main".into(), "other".into()])
    }
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
struct ConsumeConfig {
    /// Fail on this attempt after reading `fail_after` items.
    fail_on_attempt: Option<u32>,
    fail_after: usize,
    /// Pause this long after every item.
    pause_ms: u64,
    /// Suspend instead of finishing.
    suspend: bool,
}

/// Reads its stream and emits `{count, sum}`.
struct Consume {
    probe: Arc<Probe>,
    config: ConsumeConfig,
}

#[async_trait]
impl Node for Consume {
    async fn execute(&self, ctx: &NodeContext, input: Ports) -> Result<NodeOutcome, NodeError> {
        self.probe.consumed.fetch_add(1, Ordering::SeqCst);
        assert!(
            input.main_items().is_empty(),
            "a streaming node's input comes through next_item"
        );
        let (mut count, mut sum) = (0_usize, 0_u64);
        while let Some(item) = ctx.next_item().await? {
            self.probe.received.fetch_add(1, Ordering::SeqCst);
            if self.probe.producing.load(Ordering::SeqCst) {
                self.probe.overlapped.store(true, Ordering::SeqCst);
            }
            count += 1;
            sum += item["n"].as_u64().unwrap_or_default();
            if self.config.fail_on_attempt == Some(ctx.attempt()) && count == self.config.fail_after
            {
                return Err(NodeError::retryable(format!(
                    "ERP busy after {count} items"
                )));
            }
            if self.config.pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(self.config.pause_ms)).await;
            }
        }
        if self.config.suspend {
            return Ok(NodeOutcome::suspend(Suspend::until_event("never")));
        }
        Ok(NodeOutcome::main(vec![crate::support::item(
            json!({ "count": count, "sum": sum }),
        )]))
    }

    fn join(&self) -> Join {
        Join::Stream
    }
}

#[derive(Deserialize, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", default)]
struct RelayConfig {
    fail_on_attempt: Option<u32>,
    fail_after: usize,
}

/// Passes its stream on as it reads it: the middle of a chain.
struct Relay {
    config: RelayConfig,
}

#[async_trait]
impl Node for Relay {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let mut n = 0;
        while let Some(item) = ctx.next_item().await? {
            n += 1;
            if self.config.fail_on_attempt == Some(ctx.attempt()) && n == self.config.fail_after {
                return Err(NodeError::retryable("relay lost its connection"));
            }
            ctx.emit("main", item).await?;
        }
        Ok(NodeOutcome::main(Vec::new()))
    }

    fn join(&self) -> Join {
        Join::Stream
    }
}

/// Reads the first item of its stream and ends.
struct TakeFirst;

#[async_trait]
impl Node for TakeFirst {
    async fn execute(&self, ctx: &NodeContext, _: Ports) -> Result<NodeOutcome, NodeError> {
        let first = ctx.next_item().await?;
        Ok(NodeOutcome::main(first.into_iter().collect()))
    }

    fn join(&self) -> Join {
        Join::Stream
    }
}

/// The test nodes of `support`, and `produce` and `consume`.
fn streaming_registry(log: &Arc<Log>, probe: &Arc<Probe>) -> NodeRegistry {
    let mut registry = registry(log);
    let p = Arc::clone(probe);
    registry
        .register_with_config(
            NodeDescriptor::new("produce", NodeCategory::Transform).outputs(["main", "other"]),
            move |config: ProduceConfig| {
                Ok(Produce {
                    probe: Arc::clone(&p),
                    config,
                })
            },
        )
        .expect("produce registers");
    let p = Arc::clone(probe);
    registry
        .register_with_config(
            NodeDescriptor::new("consume", NodeCategory::Transform),
            move |config: ConsumeConfig| {
                Ok(Consume {
                    probe: Arc::clone(&p),
                    config,
                })
            },
        )
        .expect("consume registers");
    registry
        .register_with_config(
            NodeDescriptor::new("relay", NodeCategory::Transform),
            |config: RelayConfig| Ok(Relay { config }),
        )
        .expect("relay registers");
    registry
        .register_node(
            NodeDescriptor::new("take_first", NodeCategory::Transform),
            TakeFirst,
        )
        .expect("take_first registers");
    // Says it streams; its node does not.
    let p = Arc::clone(probe);
    registry
        .register_with_config(
            NodeDescriptor::new("liar", NodeCategory::Transform).streams_input_when(""),
            move |config: ProduceConfig| {
                Ok(Produce {
                    probe: Arc::clone(&p),
                    config,
                })
            },
        )
        .expect("liar registers");
    registry
}

struct Streaming {
    engine: Engine,
    probe: Arc<Probe>,
    tenant: TenantId,
}

impl Streaming {
    async fn new(configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Self {
        Self::on(InMemoryStore::new(), configure).await
    }

    async fn on(
        store: InMemoryStore,
        configure: impl FnOnce(EngineBuilder) -> EngineBuilder,
    ) -> Self {
        let probe = Arc::new(Probe::default());
        let log = Arc::new(Log::default());
        let builder = Engine::builder()
            .store(store)
            .registry(streaming_registry(&log, &probe))
            .default_node_timeout(Some(Duration::from_secs(20)));
        Self {
            engine: configure(builder).build().await.expect("engine builds"),
            probe,
            tenant: TenantId::new("acme"),
        }
    }

    async fn publish(&self, def: Value) -> PublishedWorkflow {
        self.engine
            .publish(
                &self.tenant,
                WorkflowDefinition::from_value(def).expect("parses"),
            )
            .await
            .expect("publishes")
    }

    async fn run(&self, def: Value) -> (RunId, concertmaster_core::run::RunDetail) {
        let wf = self.publish(def).await;
        let id = self.engine.start(&wf, json!({})).await.expect("starts");
        self.engine
            .finished(&self.tenant, id)
            .await
            .expect("finishes");
        (id, self.engine.run(&self.tenant, id).await.expect("reads"))
    }
}

/// start -> produce -> consume -> after.
fn pipeline(produce: Value, consume: Value) -> Value {
    workflow(
        "pipeline",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", produce),
            ("consume", "consume", consume),
            ("after", "pass", json!({})),
        ],
        &[
            ("start", "produce"),
            ("produce", "consume"),
            ("consume", "after"),
        ],
    )
}

fn result(detail: &concertmaster_core::run::RunDetail, node: &str) -> Value {
    let record = detail.node(node).expect("node has a record");
    Value::Object(
        record
            .output
            .as_ref()
            .and_then(|o| o.main_items().first().cloned())
            .unwrap_or_default(),
    )
}

fn sum_below(n: u64) -> u64 {
    n * (n - 1) / 2
}

/// Asserts that the run succeeded and that `node` read each of the `n`
/// items once (`why` says what that shows).
fn assert_read_all(detail: &concertmaster_core::run::RunDetail, node: &str, n: u64, why: &str) {
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.run.error
    );
    assert_eq!(
        result(detail, node),
        json!({"count": n, "sum": sum_below(n)}),
        "{why}"
    );
}

#[tokio::test]
async fn a_consumer_reads_while_its_producer_sends_and_the_producer_waits_for_it() {
    let h = Streaming::new(|b| b.edge_capacity(4)).await;
    let (_, detail) = h.run(pipeline(json!({"count": 5000}), json!({}))).await;
    assert_read_all(&detail, "consume", 5000, "");
    let most_ahead = h.probe.most_ahead.load(Ordering::SeqCst);
    assert!(
        most_ahead <= 4 + 1,
        "the producer ran {most_ahead} items ahead of a queue of 4"
    );
    assert!(
        h.probe.overlapped.load(Ordering::SeqCst),
        "both ran at once"
    );
    let produced = detail.node("produce").expect("record");
    assert_eq!(produced.status, NodeStatus::Succeeded);
    let output = produced.output.as_ref().expect("output");
    assert!(output.is_taken("main"), "the streamed port is taken");
    assert!(
        output.main_items().is_empty(),
        "what was streamed is not recorded"
    );
    assert!(detail.node("consume").expect("record").input.is_empty());
    assert_eq!(
        detail
            .node("after")
            .expect("after ran")
            .input
            .main_items()
            .len(),
        1,
        "the node after the consumer gets its output"
    );
}

#[tokio::test]
async fn a_stream_goes_through_an_engine_of_one_node_at_a_time() {
    // The consumer runs under its producer's permit: with one permit and
    // one node per run, neither waits for the other forever.
    let h = Streaming::new(|b| {
        b.edge_capacity(1)
            .max_concurrent_nodes(1)
            .max_concurrent_nodes_per_run(1)
    })
    .await;
    let (_, detail) = h.run(pipeline(json!({"count": 300}), json!({}))).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.run.error
    );
    assert_eq!(result(&detail, "consume")["count"], 300);
}

#[tokio::test]
async fn items_returned_rather_than_emitted_reach_the_consumer_as_a_stream() {
    let h = Streaming::new(|b| b.edge_capacity(2)).await;
    let (_, detail) = h
        .run(pipeline(json!({"count": 50, "returns": true}), json!({})))
        .await;
    assert_read_all(&detail, "consume", 50, "");
    let output = detail
        .node("produce")
        .and_then(|r| r.output.as_ref())
        .expect("output");
    assert!(output.is_taken("main") && output.main_items().is_empty());
}

#[tokio::test]
async fn a_port_taken_with_nothing_streams_nothing_and_an_untaken_one_skips_its_consumer() {
    let h = Streaming::new(|b| b).await;
    let (_, detail) = h.run(pipeline(json!({"count": 0}), json!({}))).await;
    assert_eq!(result(&detail, "consume"), json!({"count": 0, "sum": 0}));

    let def = workflow(
        "branches",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", json!({"count": 3, "port": "other"})),
            ("consume", "consume", json!({})),
            ("other", "pass", json!({})),
        ],
        &[
            ("start", "produce"),
            ("produce", "consume"),
            ("produce:other", "other"),
        ],
    );
    let (_, detail) = h.run(def).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    assert_eq!(
        detail.node("consume").expect("record").status,
        NodeStatus::Skipped
    );
    assert_eq!(
        detail.node("other").expect("ran").input.main_items().len(),
        3,
        "a port with an edge that does not stream is recorded"
    );
}

#[tokio::test]
async fn a_retryable_consumer_failure_runs_producer_and_consumer_again() {
    let h = Streaming::new(|b| b.edge_capacity(8)).await;
    let mut def = pipeline(
        json!({"count": 200}),
        json!({"failOnAttempt": 1, "failAfter": 30}),
    );
    def["nodes"][2]["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 5, "maxBackoffMs": 10});
    let (_, detail) = h.run(def).await;
    assert_read_all(
        &detail,
        "consume",
        200,
        "the second attempt read the whole stream again",
    );
    assert_eq!(h.probe.produced.load(Ordering::SeqCst), 2);
    assert_eq!(h.probe.consumed.load(Ordering::SeqCst), 2);
    let consume = detail.node("consume").expect("record");
    assert_eq!(consume.attempt, 2);
    assert_eq!(detail.node("produce").expect("record").attempt, 2);
    let error = detail
        .node("produce")
        .and_then(|r| r.error.as_ref())
        .expect("the producer's record keeps why it ran again");
    assert!(error.message().contains("ERP busy"), "{error:?}");
}

#[tokio::test]
async fn a_retryable_producer_failure_after_sending_runs_both_again() {
    let h = Streaming::new(|b| b.edge_capacity(8)).await;
    let mut def = pipeline(
        json!({"count": 100, "failOnAttempt": 1, "failAfter": 40}),
        json!({}),
    );
    def["nodes"][1]["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 5});
    let (_, detail) = h.run(def).await;
    assert_read_all(
        &detail,
        "consume",
        100,
        "no item of the failed attempt reached the result",
    );
    assert_eq!(h.probe.consumed.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn retries_of_a_stream_stop_at_the_failing_nodes_policy() {
    let h = Streaming::new(|b| b.edge_capacity(8)).await;
    let mut def = pipeline(
        json!({"count": 100, "failOnAttempt": 1, "failAfter": 10}),
        json!({}),
    );
    def["nodes"][1]["retry"] = json!({"maxAttempts": 1});
    let (_, detail) = h.run(def).await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    assert_eq!(h.probe.produced.load(Ordering::SeqCst), 1);
    assert!(
        detail
            .run
            .error
            .as_deref()
            .is_some_and(|e| e.contains("node produce failed: source hiccup")),
        "{:?}",
        detail.run.error
    );
    assert!(
        detail.node("after").is_none(),
        "nothing after the stream ran"
    );
}

#[tokio::test]
async fn a_producer_failing_for_good_breaks_its_consumers_stream() {
    let h = Streaming::new(|b| b.edge_capacity(4)).await;
    let def = workflow(
        "broken",
        &[
            ("start", "start", json!({})),
            (
                "produce",
                "produce",
                json!({"count": 100, "failOnAttempt": 1, "failAfter": 20, "fatal": true}),
            ),
            ("consume", "consume", json!({})),
            ("handle", "pass", json!({})),
        ],
        &[
            ("start", "produce"),
            ("produce", "consume"),
            ("produce:error", "handle"),
        ],
    );
    let (_, detail) = h.run(def).await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    let consume = detail.node("consume").expect("the consumer had started");
    assert_eq!(consume.status, NodeStatus::Failed);
    let message = consume.error.as_ref().expect("error").message();
    assert!(
        message.contains("the stream from node produce broke off"),
        "{message}"
    );
    assert!(
        detail.node("handle").is_none(),
        "nothing after the group runs before all of it ended"
    );
}

#[tokio::test]
async fn a_streaming_node_cannot_suspend() {
    let h = Streaming::new(|b| b).await;
    let (_, detail) = h
        .run(pipeline(json!({"count": 3}), json!({"suspend": true})))
        .await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    let message = detail
        .node("consume")
        .and_then(|r| r.error.as_ref())
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert!(message.contains("cannot suspend"), "{message}");
}

#[tokio::test]
async fn a_streaming_node_needs_exactly_one_edge_and_not_from_an_error_port() {
    let h = Streaming::new(|b| b).await;
    for (edges, says) in [
        (
            vec![
                ("start", "produce"),
                ("start", "consume"),
                ("produce", "consume"),
            ],
            "2 edges arrive at it",
        ),
        (vec![("start", "produce")], "0 edges arrive at it"),
        (
            vec![("start", "produce"), ("produce:error", "consume")],
            "an error port sends no stream",
        ),
    ] {
        let def = workflow(
            "invalid",
            &[
                ("start", "start", json!({})),
                ("produce", "produce", json!({"count": 1})),
                ("consume", "consume", json!({})),
            ],
            &edges,
        );
        let def = WorkflowDefinition::from_value(def).expect("parses");
        let err = h.engine.validate(&def).expect_err("refused");
        let issue = err
            .issues
            .iter()
            .find(|i| i.kind == IssueKind::StreamJoin)
            .unwrap_or_else(|| panic!("a stream issue for {edges:?}: {err}"));
        assert_eq!(issue.node.as_ref().map(|n| n.as_str()), Some("consume"));
        assert!(issue.message.contains(says), "{}", issue.message);
    }
}

#[tokio::test]
async fn a_descriptor_that_says_otherwise_than_its_node_is_refused() {
    let h = Streaming::new(|b| b).await;
    let def = workflow(
        "liar",
        &[
            ("start", "start", json!({})),
            ("liar", "liar", json!({"count": 1})),
        ],
        &[("start", "liar")],
    );
    let def = WorkflowDefinition::from_value(def).expect("parses");
    let err = h.engine.validate(&def).expect_err("refused");
    let issue = err
        .issues
        .iter()
        .find(|i| i.kind == IssueKind::StreamJoin)
        .unwrap_or_else(|| panic!("a stream issue: {err}"));
    assert!(
        issue.message.contains("make them agree"),
        "{}",
        issue.message
    );
    assert!(
        issue.message.contains("node type liar"),
        "{}",
        issue.message
    );
}

#[tokio::test]
async fn an_engine_stopped_mid_stream_is_followed_by_one_that_runs_the_stream_again() {
    let store = InMemoryStore::new();
    let quick = |b: EngineBuilder| {
        b.edge_capacity(4)
            .lease_ttl(Duration::from_millis(300))
            .recovery_interval(Duration::from_millis(50))
    };
    let first = Streaming::on(store.clone(), quick).await;
    let wf = first
        .publish(pipeline(json!({"count": 60}), json!({"pauseMs": 20})))
        .await;
    let run = first.engine.start(&wf, json!({})).await.expect("starts");
    while first.probe.received.load(Ordering::SeqCst) < 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.engine.shutdown();
    drop(first);

    let second = Streaming::on(store, quick).await;
    second
        .engine
        .finished(&second.tenant, run)
        .await
        .expect("finishes");
    let detail = second.engine.run(&second.tenant, run).await.expect("reads");
    assert_read_all(
        &detail,
        "consume",
        60,
        "the consumer read the whole stream from a producer run again",
    );
    assert_eq!(second.probe.produced.load(Ordering::SeqCst), 1);
    assert_eq!(second.probe.consumed.load(Ordering::SeqCst), 1);
    assert_eq!(detail.node("produce").expect("record").attempt, 2);
    assert_eq!(
        detail.node("start").expect("record").status,
        NodeStatus::Succeeded
    );
}

#[tokio::test]
async fn a_rerun_from_a_streaming_node_starts_at_its_producer() {
    let h = Streaming::new(|b| b).await;
    let (id, _) = h.run(pipeline(json!({"count": 10}), json!({}))).await;
    let again = h
        .engine
        .rerun(
            &h.tenant,
            id,
            RerunFrom::Nodes(vec!["consume".into()]),
            RerunVersion::Pinned,
        )
        .await
        .expect("re-runs");
    h.engine.finished(&h.tenant, again).await.expect("finishes");
    let detail = h.engine.run(&h.tenant, again).await.expect("reads");
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    assert_eq!(result(&detail, "consume")["count"], 10);
    assert_eq!(h.probe.produced.load(Ordering::SeqCst), 2);
    let origin = detail.run.origin.expect("origin");
    assert_eq!(
        origin.reused,
        vec![concertmaster_core::NodeId::new("start")]
    );
}

#[tokio::test]
async fn a_node_called_directly_reads_a_given_stream_and_keeps_what_it_emits() {
    let probe = Arc::new(Probe::default());
    let ctx = NodeContext::new("acme", "w", RunId::new(), "consume").with_stream(vec![
        crate::support::item(json!({"n": 2})),
        crate::support::item(json!({"n": 3})),
    ]);
    let consume = Consume {
        probe: Arc::clone(&probe),
        config: ConsumeConfig::default(),
    };
    let out = consume.execute(&ctx, Ports::new()).await.expect("runs");
    assert_eq!(
        out,
        NodeOutcome::main(vec![crate::support::item(json!({"count": 2, "sum": 5}))])
    );

    let ctx = NodeContext::new("acme", "w", RunId::new(), "produce");
    let produce = Produce {
        probe,
        config: ProduceConfig {
            count: 3,
            ..ProduceConfig::default()
        },
    };
    let out = produce.execute(&ctx, Ports::new()).await.expect("runs");
    assert_eq!(out, NodeOutcome::main(Vec::new()));
    assert_eq!(ctx.take_emitted().main_items().len(), 3);

    let err = NodeContext::new("acme", "w", RunId::new(), "plain")
        .next_item()
        .await
        .expect_err("a node that does not stream has no stream");
    assert!(err.message().contains("Join::Stream"), "{err}");
}

#[tokio::test]
async fn emitted_items_join_the_output_of_a_node_whose_edges_do_not_stream() {
    let h = Streaming::new(|b| b).await;
    let def = workflow(
        "plain",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", json!({"count": 5})),
            ("after", "pass", json!({})),
        ],
        &[("start", "produce"), ("produce", "after")],
    );
    let (_, detail) = h.run(def).await;
    assert_eq!(detail.run.status, RunStatus::Succeeded);
    let output = detail
        .node("produce")
        .and_then(|r| r.output.as_ref())
        .expect("output");
    assert_eq!(output.main_items().len(), 5, "recorded, as if returned");
    assert_eq!(
        detail.node("after").expect("ran").input.main_items().len(),
        5
    );
}

#[tokio::test]
async fn one_port_streams_to_two_consumers_and_waits_for_the_slower() {
    let h = Streaming::new(|b| b.edge_capacity(2)).await;
    let def = workflow(
        "tee",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", json!({"count": 40})),
            ("fast", "consume", json!({})),
            ("slow", "consume", json!({"pauseMs": 2})),
            ("both", "pass", json!({})),
        ],
        &[
            ("start", "produce"),
            ("produce", "fast"),
            ("produce", "slow"),
            ("fast", "both"),
            ("slow", "both"),
        ],
    );
    let (_, detail) = h.run(def).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.run.error
    );
    let all = json!({"count": 40, "sum": sum_below(40)});
    assert_eq!(result(&detail, "fast"), all);
    assert_eq!(result(&detail, "slow"), all);
    assert_eq!(
        detail.node("both").expect("ran").input.main_items().len(),
        2,
        "the join after them got both results"
    );
}

#[tokio::test]
async fn a_failure_in_the_middle_of_a_chain_runs_the_whole_chain_again() {
    let h = Streaming::new(|b| b.edge_capacity(4)).await;
    let def = workflow(
        "chain",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", json!({"count": 30})),
            (
                "relay",
                "relay",
                json!({"failOnAttempt": 1, "failAfter": 12}),
            ),
            ("consume", "consume", json!({})),
        ],
        &[
            ("start", "produce"),
            ("produce", "relay"),
            ("relay", "consume"),
        ],
    );
    let mut def = def;
    def["nodes"][2]["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 1});
    let (_, detail) = h.run(def).await;
    assert_read_all(
        &detail,
        "consume",
        30,
        "the end of the chain saw each item once",
    );
    assert_eq!(h.probe.produced.load(Ordering::SeqCst), 2);
    assert_eq!(h.probe.consumed.load(Ordering::SeqCst), 2);
    for node in ["produce", "relay", "consume"] {
        assert_eq!(detail.node(node).expect("record").attempt, 2, "{node}");
    }
}

#[tokio::test]
async fn a_consumer_that_stops_reading_early_lets_its_producer_finish() {
    let h = Streaming::new(|b| b.edge_capacity(2)).await;
    let def = workflow(
        "head",
        &[
            ("start", "start", json!({})),
            ("produce", "produce", json!({"count": 500})),
            ("first", "take_first", json!({})),
        ],
        &[("start", "produce"), ("produce", "first")],
    );
    let (_, detail) = h.run(def).await;
    assert_eq!(
        detail.run.status,
        RunStatus::Succeeded,
        "{:?}",
        detail.run.error
    );
    assert_eq!(
        detail.output("first").expect("output").main_items().len(),
        1
    );
    assert_eq!(
        h.probe.sent.load(Ordering::SeqCst),
        500,
        "the producer went on past the consumer's end"
    );
}

#[tokio::test]
async fn cancelling_a_run_mid_stream_stops_both_nodes() {
    let h = Streaming::new(|b| b.edge_capacity(2)).await;
    let wf = h
        .publish(pipeline(json!({"count": 10_000}), json!({"pauseMs": 5})))
        .await;
    let id = h.engine.start(&wf, json!({})).await.expect("starts");
    while h.probe.received.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let run = h
        .engine
        .cancel(&h.tenant, id, "wrong export")
        .await
        .expect("cancels");
    assert_eq!(run.status, RunStatus::Cancelled);
    let sent = h.probe.sent.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        h.probe.sent.load(Ordering::SeqCst) <= sent + 1,
        "the producer stopped"
    );
    let detail = h.engine.run(&h.tenant, id).await.expect("reads");
    assert!(detail.node("after").is_none());
}

#[tokio::test]
async fn a_consumer_past_its_timeout_runs_the_pair_again_and_then_fails() {
    let h = Streaming::new(|b| b.edge_capacity(2)).await;
    let mut def = pipeline(json!({"count": 100}), json!({"pauseMs": 20}));
    def["nodes"][2]["timeoutMs"] = json!(100);
    def["nodes"][2]["retry"] = json!({"maxAttempts": 2, "initialBackoffMs": 1});
    let (_, detail) = h.run(def).await;
    assert_eq!(detail.run.status, RunStatus::Failed);
    assert_eq!(h.probe.produced.load(Ordering::SeqCst), 2);
    let error = detail
        .node("consume")
        .and_then(|r| r.error.as_ref())
        .expect("error");
    assert!(error.message().contains("timed out"), "{error:?}");
    assert_eq!(detail.node("consume").expect("record").attempt, 2);
}
