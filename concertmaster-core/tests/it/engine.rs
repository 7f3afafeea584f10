//! The executor through the engine API: scheduling, branches, retries,
//! timeouts, error ports, cancellation, suspension, timers, limits, metrics.

use std::sync::atomic::Ordering;
use std::time::Duration;

use concertmaster_core::{
    clock::ManualClock,
    run::{NodeStatus, RunFilter},
    Error, RunStatus, TenantId, WorkflowDefinition,
};
use serde_json::json;

use crate::support::{workflow, Harness};

#[tokio::test]
async fn a_node_starts_as_soon_as_its_own_inputs_are_done() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "ready-set",
            &[
                ("start", "start", json!({})),
                ("slow", "pass", json!({"pauseMs": 300})),
                ("after_slow", "pass", json!({})),
                ("f1", "pass", json!({})),
                ("f2", "pass", json!({})),
                ("f3", "pass", json!({})),
            ],
            &[
                ("start", "slow"),
                ("slow", "after_slow"),
                ("start", "f1"),
                ("f1", "f2"),
                ("f2", "f3"),
            ],
        ))
        .await;
    let run = h.engine.start(&wf, json!({"n": 1})).await.expect("starts");
    let run = h.engine.settled(&h.tenant, run).await.expect("settles");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let order = h.log.order();
    let at = |n: &str| order.iter().position(|o| o == n).expect("node ran");
    // Level-by-level scheduling would hold f2 until slow (same level as f1) finished.
    assert!(at("f3") < at("after_slow"), "{order:?}");
}

#[tokio::test]
async fn an_untaken_port_skips_its_branch_and_the_join_still_runs() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "branching",
            &[
                ("start", "start", json!({})),
                ("check", "branch", json!({"take": "true"})),
                ("yes", "pass", json!({})),
                ("no", "pass", json!({})),
                ("no_more", "pass", json!({})),
                ("join", "join", json!({})),
                ("after", "pass", json!({})),
            ],
            &[
                ("start", "check"),
                ("check:true", "yes"),
                ("check:false", "no"),
                ("no", "no_more"),
                ("yes", "join:left"),
                ("no_more", "join:right"),
                ("join", "after"),
            ],
        ))
        .await;
    let run = h
        .engine
        .start(&wf, json!({"supplier": "ACME"}))
        .await
        .expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Succeeded
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("run detail");
    let status = |n: &str| detail.node(n).map(|e| e.status);
    assert_eq!(status("no"), Some(NodeStatus::Skipped));
    assert_eq!(status("no_more"), Some(NodeStatus::Skipped));
    assert_eq!(status("join"), Some(NodeStatus::Succeeded));
    assert_eq!(status("after"), Some(NodeStatus::Succeeded));
    let out = detail.output("after").expect("after finished").main_items();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["trail"], json!(["start", "yes", "after"]));
    assert!(!h.log.order().contains(&"no".to_string()));
    // The timeline lists nodes in workflow order.
    let ids: Vec<&str> = detail.nodes.iter().map(|n| n.node_id.as_str()).collect();
    assert_eq!(
        ids,
        ["start", "check", "yes", "no", "no_more", "join", "after"]
    );
}

#[tokio::test]
async fn a_retryable_failure_is_retried_with_the_same_idempotency_key() {
    let h = Harness::new().await;
    let mut def = workflow(
        "retry",
        &[
            ("start", "start", json!({})),
            ("erp", "flaky", json!({"failures": 1})),
        ],
        &[("start", "erp")],
    );
    def["nodes"][1]["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 5, "maxBackoffMs": 20});
    let wf = h.publish(def).await;
    let run = h.engine.start(&wf, json!({"id": 7})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Succeeded
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    let erp = detail.node("erp").expect("erp ran");
    assert_eq!((erp.status, erp.attempt), (NodeStatus::Succeeded, 2));
    assert_eq!(
        erp.error.as_ref().map(|e| e.message()),
        Some("attempt 1 failed"),
        "the overcome failure is kept"
    );
    assert_eq!(h.log.attempts("erp"), 2);
    let keys = h.log.keys.lock().expect("lock").clone();
    assert_eq!(
        keys[1], keys[2],
        "every attempt of a node sees one idempotency key"
    );
    assert_eq!(keys[1], format!("{run}:erp"));
}

#[tokio::test]
async fn exhausted_retries_fail_the_run_and_say_which_node() {
    let h = Harness::new().await;
    let mut def = workflow(
        "exhaust",
        &[
            ("start", "start", json!({})),
            ("erp", "flaky", json!({"failures": 10})),
        ],
        &[("start", "erp")],
    );
    def["nodes"][1]["retry"] = json!({"maxAttempts": 3, "initialBackoffMs": 1, "maxBackoffMs": 5});
    let wf = h.publish(def).await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    let run = h.engine.settled(&h.tenant, run).await.expect("settles");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("node erp failed: attempt 3 failed")
    );
    assert!(run.ended_at.is_some());
    assert_eq!(h.log.attempts("erp"), 3);
}

#[tokio::test]
async fn a_fatal_failure_is_not_retried() {
    let h = Harness::new().await;
    let mut def = workflow(
        "fatal",
        &[
            ("start", "start", json!({})),
            ("erp", "flaky", json!({"failures": 1, "fatal": true})),
        ],
        &[("start", "erp")],
    );
    def["nodes"][1]["retry"] = json!({"maxAttempts": 5, "initialBackoffMs": 1});
    let wf = h.publish(def).await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Failed
    );
    assert_eq!(h.log.attempts("erp"), 1);
}

#[tokio::test]
async fn a_failure_with_an_error_edge_is_routed_instead_of_failing_the_run() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "routed",
            &[
                ("start", "start", json!({})),
                ("erp", "flaky", json!({"failures": 1, "fatal": true})),
                ("next", "pass", json!({})),
                ("handler", "pass", json!({})),
            ],
            &[("start", "erp"), ("erp", "next"), ("erp:error", "handler")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Succeeded
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.node("erp").map(|n| n.status),
        Some(NodeStatus::Failed)
    );
    assert_eq!(
        detail.node("next").map(|n| n.status),
        Some(NodeStatus::Skipped)
    );
    let handled = &detail.output("handler").expect("handler ran").main_items()[0];
    assert_eq!(handled["node"], "erp");
    assert_eq!(handled["message"], "attempt 1 failed");
    assert_eq!(handled["details"], json!({"attempt": 1}));
}

#[tokio::test]
async fn an_attempt_that_outlives_its_timeout_fails() {
    let h = Harness::new().await;
    let mut def = workflow(
        "timeout",
        &[
            ("start", "start", json!({})),
            ("slow", "pass", json!({"pauseMs": 5000})),
        ],
        &[("start", "slow")],
    );
    def["nodes"][1]["timeoutMs"] = json!(50);
    let wf = h.publish(def).await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    let run = h.engine.settled(&h.tenant, run).await.expect("settles");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.error.as_deref(),
        Some("node slow failed: attempt timed out after 50 ms")
    );
}

#[tokio::test]
async fn cancelling_stops_executing_nodes_and_ends_waits() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "cancel",
            &[
                ("start", "start", json!({})),
                ("slow", "pass", json!({"pauseMs": 30000})),
                ("ask", "await", json!({"prefix": "form"})),
            ],
            &[("start", "slow"), ("start", "ask")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    while h.log.running.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let began = std::time::Instant::now();
    let cancelled = h
        .engine
        .cancel(&h.tenant, run, "supplier withdrew")
        .await
        .expect("cancels");
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "cancel must not wait for the slow node"
    );
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("supplier withdrew"));
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.node("slow").map(|n| n.status),
        Some(NodeStatus::Cancelled)
    );
    // Its wait went with it: a late answer is held, not delivered.
    let late = h
        .engine
        .resume(&h.tenant, &format!("form:{run}"), json!({}))
        .await;
    assert!(
        matches!(late, Ok(concertmaster_core::run::Delivery::Held)),
        "{late:?}"
    );
    // Cancelling an ended run returns it unchanged.
    let again = h
        .engine
        .cancel(&h.tenant, run, "again")
        .await
        .expect("answers");
    assert_eq!(again.error.as_deref(), Some("supplier withdrew"));
}

#[tokio::test]
async fn a_waiting_run_can_be_cancelled() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "cancel-waiting",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
            ],
            &[("start", "ask")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Waiting
    );
    let cancelled = h
        .engine
        .cancel(&h.tenant, run, "no longer needed")
        .await
        .expect("cancels");
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.node("ask").map(|n| n.status),
        Some(NodeStatus::Cancelled)
    );
}

#[tokio::test]
async fn a_suspended_run_holds_its_place_until_resumed() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "suspend",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
                ("after", "pass", json!({})),
            ],
            &[("start", "ask"), ("ask", "after")],
        ))
        .await;
    let run = h
        .engine
        .start(&wf, json!([{"s": 1}, {"s": 2}]))
        .await
        .expect("starts");
    let settled = h.engine.settled(&h.tenant, run).await.expect("settles");
    assert_eq!(settled.status, RunStatus::Waiting);
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    let key = format!("form:{run}");
    assert_eq!(detail.waiting_on(), [key.as_str()]);
    assert_eq!(
        h.engine
            .runs(&h.tenant, &RunFilter::status(RunStatus::Waiting))
            .await
            .expect("lists")[0]
            .id,
        run
    );

    let resumed = h
        .engine
        .resume(&h.tenant, &key, json!({"answer": 42}))
        .await
        .expect("resumes");
    assert_eq!(resumed, concertmaster_core::run::Delivery::Resumed(run));
    let done = h.engine.finished(&h.tenant, run).await.expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    let items = detail.output("after").expect("after ran").main_items();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["payload"], json!({"answer": 42}));
    assert_eq!(
        items[0]["state"],
        json!({"items": 2}),
        "the node gets back the state it suspended with"
    );
    assert_eq!(items[0]["timedOut"], json!(false));
    assert_eq!(
        detail.node("ask").map(|n| n.attempt),
        Some(1),
        "waking is not a new attempt"
    );

    // A second event finds no wait: it is held for a node that may
    // suspend on the key later, and listed.
    let again = h.engine.resume(&h.tenant, &key, json!({})).await;
    assert!(
        matches!(again, Ok(concertmaster_core::run::Delivery::Held)),
        "{again:?}"
    );
    let held = h.engine.held_wakeups(&h.tenant).await.expect("lists");
    assert_eq!(
        held.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(),
        [key.as_str()]
    );
    // Another tenant's event on the same key stays with that tenant.
    let intruder = TenantId::new("intruder");
    let other_tenant = h.engine.resume(&intruder, &key, json!({})).await;
    assert!(matches!(
        other_tenant,
        Ok(concertmaster_core::run::Delivery::Held)
    ));
    assert_eq!(
        h.engine.held_wakeups(&h.tenant).await.expect("lists").len(),
        1
    );
    assert!(h
        .engine
        .discard_wakeup(&intruder, &key)
        .await
        .expect("discards"));
    assert!(h
        .engine
        .discard_wakeup(&h.tenant, &key)
        .await
        .expect("discards"));
    assert!(h
        .engine
        .held_wakeups(&h.tenant)
        .await
        .expect("lists")
        .is_empty());
}

#[tokio::test]
async fn durable_timers_wake_nodes_when_their_time_comes() {
    let clock = ManualClock::default();
    let h = Harness::with(|b| b.clock(clock.clone())).await;
    let wf = h
        .publish(workflow(
            "timer",
            &[
                ("start", "start", json!({})),
                ("wait", "delay", json!({"seconds": 3600})),
                ("ask", "await", json!({"prefix": "form", "deadlineS": 60})),
            ],
            &[("start", "wait"), ("start", "ask")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Waiting
    );
    assert_eq!(h.engine.fire_due_timers().await.expect("fires"), 0);

    clock.advance(Duration::from_secs(61));
    assert_eq!(
        h.engine.fire_due_timers().await.expect("fires"),
        1,
        "the deadline of ask came"
    );
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Waiting
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.output("ask").expect("ask woke").main_items()[0]["timedOut"],
        json!(true)
    );

    clock.advance(Duration::from_secs(3600));
    assert_eq!(h.engine.fire_due_timers().await.expect("fires"), 1);
    assert_eq!(
        h.engine
            .finished(&h.tenant, run)
            .await
            .expect("finishes")
            .status,
        RunStatus::Succeeded
    );
}

#[tokio::test]
async fn the_timer_loop_fires_on_its_own() {
    let h = Harness::with(|b| b.timer_poll_interval(Duration::from_millis(20))).await;
    let wf = h
        .publish(workflow(
            "own-timer",
            &[
                ("start", "start", json!({})),
                ("wait", "delay", json!({"seconds": 0})),
            ],
            &[("start", "wait")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    let done = tokio::time::timeout(Duration::from_secs(5), h.engine.finished(&h.tenant, run))
        .await
        .expect("the timer fires within the poll interval")
        .expect("finishes");
    assert_eq!(done.status, RunStatus::Succeeded);
}

#[tokio::test]
async fn concurrency_is_bounded_per_run_and_per_engine() {
    let fan_out = |id: &str| {
        let mut nodes = vec![("start".to_string(), "start", json!({}))];
        let mut edges = Vec::new();
        for i in 0..8 {
            nodes.push((format!("n{i}"), "pass", json!({"pauseMs": 30})));
            edges.push(("start".to_string(), format!("n{i}")));
        }
        let nodes: Vec<(&str, &str, serde_json::Value)> = nodes
            .iter()
            .map(|(a, b, c)| (a.as_str(), *b, c.clone()))
            .collect();
        let edges: Vec<(&str, &str)> = edges
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        workflow(id, &nodes, &edges)
    };

    let h = Harness::with(|b| b.max_concurrent_nodes_per_run(3)).await;
    let wf = h.publish(fan_out("per-run")).await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Succeeded
    );
    assert_eq!(h.log.max_running.load(Ordering::SeqCst), 3);

    let h = Harness::with(|b| b.max_concurrent_nodes(2)).await;
    let wf = h.publish(fan_out("per-engine")).await;
    let a = h.engine.start(&wf, json!({})).await.expect("starts");
    let b = h.engine.start(&wf, json!({})).await.expect("starts");
    for run in [a, b] {
        assert_eq!(
            h.engine
                .settled(&h.tenant, run)
                .await
                .expect("settles")
                .status,
            RunStatus::Succeeded
        );
    }
    assert_eq!(h.log.max_running.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_run_keeps_the_version_it_started_on() {
    let h = Harness::new().await;
    let v1 = h
        .publish(workflow(
            "pinned",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
                ("v1_only", "pass", json!({})),
            ],
            &[("start", "ask"), ("ask", "v1_only")],
        ))
        .await;
    let run = h.engine.start(&v1, json!({})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Waiting
    );

    let v2 = h
        .publish(workflow(
            "pinned",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "form"})),
                ("v2_only", "pass", json!({})),
            ],
            &[("start", "ask"), ("ask", "v2_only")],
        ))
        .await;
    assert_eq!(v2.version(), 2);
    h.engine
        .resume(&h.tenant, &format!("form:{run}"), json!({}))
        .await
        .expect("resumes");
    let done = h.engine.finished(&h.tenant, run).await.expect("finishes");
    assert_eq!(
        (done.status, done.workflow_version),
        (RunStatus::Succeeded, 1)
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert!(detail.node("v1_only").is_some());
    assert!(detail.node("v2_only").is_none());
}

#[tokio::test]
async fn trigger_data_must_be_objects() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow("t", &[("start", "start", json!({}))], &[]))
        .await;
    let err = h
        .engine
        .start(&wf, json!("hello"))
        .await
        .expect_err("a string is refused");
    assert_eq!(
        err.to_string(),
        "trigger data for workflow t: expected a JSON object or an array of objects, got a string, not an object or an array of objects"
    );
    let run = h
        .engine
        .start(&wf, json!([{"a": 1}, {"a": 2}, {"a": 3}]))
        .await
        .expect("starts");
    h.engine.settled(&h.tenant, run).await.expect("settles");
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.output("start").map(|p| p.main_items().len()),
        Some(3)
    );
}

#[tokio::test]
async fn starting_at_one_trigger_skips_the_others() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "two-triggers",
            &[
                ("by_form", "start", json!({})),
                ("by_schedule", "start", json!({})),
                ("join", "join", json!({})),
            ],
            &[("by_form", "join:left"), ("by_schedule", "join:right")],
        ))
        .await;
    let run = h
        .engine
        .start_at(&wf, "by_form", json!({"via": "form"}))
        .await
        .expect("starts");
    h.engine.settled(&h.tenant, run).await.expect("settles");
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.node("by_schedule").map(|n| n.status),
        Some(NodeStatus::Skipped)
    );
    assert_eq!(detail.output("join").map(|p| p.main_items().len()), Some(1));
    let err = h
        .engine
        .start_at(&wf, "join", json!({}))
        .await
        .expect_err("join has inputs");
    assert!(matches!(err, Error::NotATrigger { .. }), "{err}");
}

#[tokio::test]
async fn a_first_join_starts_on_the_first_live_input_and_ignores_the_rest() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "race",
            &[
                ("start", "start", json!({})),
                ("slow", "hold", json!({})),
                ("first", "first", json!({})),
                ("after", "pass", json!({})),
            ],
            &[
                ("start", "slow"),
                ("slow", "first:left"),
                ("start", "first:right"),
                ("first", "after"),
            ],
        ))
        .await;
    let run = h.engine.start(&wf, json!({"n": 1})).await.expect("starts");
    assert_eq!(
        h.engine
            .settled(&h.tenant, run)
            .await
            .expect("settles")
            .status,
        RunStatus::Waiting
    );
    let detail = h.engine.run(&h.tenant, run).await.expect("detail");
    assert_eq!(
        detail.node("after").map(|n| n.status),
        Some(NodeStatus::Succeeded)
    );
    h.engine
        .resume(&h.tenant, &format!("hold:{run}:slow"), json!({}))
        .await
        .expect("resumes");
    let ended = h.engine.finished(&h.tenant, run).await.expect("finishes");
    assert_eq!(ended.status, RunStatus::Succeeded);
    let order = h.log.order();
    assert_eq!(
        order.iter().filter(|n| n.starts_with("first")).count(),
        1,
        "{order:?}"
    );
}

#[tokio::test]
async fn a_keyed_start_happens_once_across_engines_on_one_store() {
    let store = concertmaster_core::InMemoryStore::new();
    let first = Harness::with(|b| b.store(store.clone())).await;
    let second = Harness::with(|b| b.store(store.clone())).await;
    let def = workflow("nightly", &[("tick", "start", json!({}))], &[]);
    let wf1 = first.publish(def).await;
    let wf2 = second
        .engine
        .workflow(&first.tenant, &"nightly".into(), None)
        .await
        .expect("published");
    let key = "2026-03-29T02:30:00+02:00";
    let (a, b) = tokio::join!(
        first
            .engine
            .start_once(&wf1, Some("tick"), key, json!({"at": key})),
        second
            .engine
            .start_once(&wf2, Some("tick"), key, json!({"at": key})),
    );
    let ((run_a, new_a), (run_b, new_b)) = (a.expect("starts"), b.expect("starts"));
    assert_eq!(run_a, run_b, "both name the same run");
    assert!(new_a ^ new_b, "exactly one started it: {new_a} {new_b}");
    first
        .engine
        .finished(&first.tenant, run_a)
        .await
        .expect("finishes");
    let runs = first
        .engine
        .runs(&first.tenant, &RunFilter::all())
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1);
    let (other, new) = first
        .engine
        .start_once(&wf1, Some("tick"), "another fire", json!({}))
        .await
        .expect("starts");
    assert!(new && other != run_a, "another key is another run");
}

#[tokio::test]
async fn a_panicking_node_fails_the_run_and_is_named() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "panics",
            &[("start", "start", json!({})), ("boom", "panic", json!({}))],
            &[("start", "boom")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    let run = h.engine.settled(&h.tenant, run).await.expect("settles");
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        run.error
            .as_deref()
            .unwrap_or_default()
            .starts_with("node boom panicked"),
        "{run:?}"
    );
}

#[tokio::test]
async fn tenants_cannot_reach_each_others_runs() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow("t", &[("start", "start", json!({}))], &[]))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    h.engine.settled(&h.tenant, run).await.expect("settles");
    let other = TenantId::new("other");
    assert!(matches!(
        h.engine.run(&other, run).await,
        Err(Error::RunNotFound { .. })
    ));
    assert!(matches!(
        h.engine.cancel(&other, run, "x").await,
        Err(Error::RunNotFound { .. })
    ));
    assert!(h
        .engine
        .runs(&other, &RunFilter::all())
        .await
        .expect("lists")
        .is_empty());
}

#[tokio::test]
async fn publish_start_resume_and_cancel_are_audited() {
    let h = Harness::new().await;
    let wf = h
        .publish(workflow(
            "audited",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "f"})),
            ],
            &[("start", "ask")],
        ))
        .await;
    let run = h.engine.start(&wf, json!({})).await.expect("starts");
    h.engine.settled(&h.tenant, run).await.expect("settles");
    h.engine
        .resume(&h.tenant, &format!("f:{run}"), json!({}))
        .await
        .expect("resumes");
    h.engine.finished(&h.tenant, run).await.expect("finishes");
    let log = h
        .engine
        .store()
        .audit_log(
            &h.tenant,
            &concertmaster_core::store::AuditFilter::default(),
        )
        .await
        .expect("reads");
    let actions: Vec<String> = log
        .iter()
        .map(|e| format!("{:?} {}", e.action, e.entity_type))
        .collect();
    assert_eq!(actions, ["Resume run", "Execute run", "Create workflow"]);

    // A wake-up that only matters to a node waiting now carries its entry
    // in the same change: it is there when the call returns.
    let second = h.engine.start(&wf, json!({})).await.expect("starts");
    h.engine.settled(&h.tenant, second).await.expect("settles");
    let key = format!("f:{second}");
    let woken = concertmaster_core::run::acting_as(
        "supplier-portal",
        h.engine.resume_if_waiting(&h.tenant, &key, json!({})),
    )
    .await
    .expect("resumes");
    assert_eq!(woken, Some(second));
    let log = h
        .engine
        .store()
        .audit_log(
            &h.tenant,
            &concertmaster_core::store::AuditFilter::default(),
        )
        .await
        .expect("reads");
    let entry = log
        .iter()
        .find(|e| {
            e.entity_id == second.to_string()
                && e.action == concertmaster_core::store::AuditAction::Resume
        })
        .expect("the resume is audited with the wait's end");
    assert_eq!(entry.actor.as_deref(), Some("supplier-portal"));
    assert_eq!(entry.details, json!({ "node": "ask", "key": key }));
    let none = h
        .engine
        .resume_if_waiting(&h.tenant, &key, json!({}))
        .await
        .expect("answers");
    assert_eq!(none, None, "no wait is left on the key");
    h.engine
        .finished(&h.tenant, second)
        .await
        .expect("finishes");
}

#[test]
fn metrics_use_the_documented_names() {
    use metrics_util::debugging::DebuggingRecorder;
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("only this test installs a recorder");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let h = Harness::new().await;
        let wf = h
            .publish(workflow(
                "metered",
                &[("start", "start", json!({})), ("next", "pass", json!({}))],
                &[("start", "next")],
            ))
            .await;
        let run = h.engine.start(&wf, json!({})).await.expect("starts");
        h.engine.settled(&h.tenant, run).await.expect("settles");
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let named = |name: &str| {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .filter(|(key, ..)| {
                key.key()
                    .labels()
                    .any(|l| l.value() == "metered" || l.value() == "pass")
            })
            .count()
    };
    use concertmaster_core::telemetry::*;
    assert_eq!(named(WORKFLOW_EXECUTIONS_TOTAL), 1, "{snapshot:?}");
    assert_eq!(named(WORKFLOW_EXECUTION_DURATION_SECONDS), 1);
    assert_eq!(named(NODE_EXECUTION_DURATION_SECONDS), 1);
    assert!(snapshot
        .iter()
        .any(|(key, ..)| key.key().name() == ACTIVE_WORKFLOWS));
    let _ = WorkflowDefinition::new("unused", "keeps the import list honest");
}

/// Reads the store while it executes: its predecessor's result must already
/// be committed there.
struct ChecksCommitted {
    store: concertmaster_core::InMemoryStore,
}

#[async_trait::async_trait]
impl concertmaster_core::Node for ChecksCommitted {
    async fn execute(
        &self,
        ctx: &concertmaster_core::NodeContext,
        input: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        use concertmaster_core::store::RunStore;
        let records = self
            .store
            .node_executions(ctx.tenant(), ctx.run_id())
            .await
            .map_err(|e| concertmaster_core::NodeError::fatal(e.to_string()))?;
        let mine = records.iter().find(|r| r.node_id == *ctx.node_id());
        let before = records
            .iter()
            .find(|r| r.node_id.as_str() != ctx.node_id().as_str());
        // This node has side effects: its own record is committed running
        // before it acts, and the steps before it with it.
        match (mine, before) {
            (Some(mine), Some(prev))
                if mine.status == NodeStatus::Running
                    && prev.status == NodeStatus::Succeeded
                    && prev.output.is_some() =>
            {
                Ok(concertmaster_core::NodeOutcome::Done(input))
            }
            other => Err(concertmaster_core::NodeError::fatal(format!(
                "not committed yet: {other:?}"
            ))),
        }
    }
}

/// An engine on `store` with a published workflow of two nodes: trigger
/// `a`, then `b`, which is `second` (declared with side effects when
/// `side_effects`).
async fn trigger_then(
    store: &concertmaster_core::InMemoryStore,
    second: impl concertmaster_core::Node,
    side_effects: bool,
) -> (
    concertmaster_core::Engine,
    TenantId,
    concertmaster_core::workflow::PublishedWorkflow,
) {
    use concertmaster_core::{node::NodeCategory, Engine, NodeDescriptor, NodeRegistry};
    let mut registry = NodeRegistry::new();
    registry
        .register_node(
            NodeDescriptor::new("first", NodeCategory::Trigger),
            ChecksNothing,
        )
        .expect("registers");
    registry
        .register_node(
            if side_effects {
                NodeDescriptor::new("second", NodeCategory::Transform).with_side_effects()
            } else {
                NodeDescriptor::new("second", NodeCategory::Transform)
            },
            second,
        )
        .expect("registers");
    let engine = Engine::builder()
        .store(store.clone())
        .registry(registry)
        .build()
        .await
        .expect("builds");
    let tenant = TenantId::new("acme");
    let wf = engine
        .publish(
            &tenant,
            WorkflowDefinition::from_value(workflow(
                "two",
                &[("a", "first", json!({})), ("b", "second", json!({}))],
                &[("a", "b")],
            ))
            .expect("parses"),
        )
        .await
        .expect("publishes");
    (engine, tenant, wf)
}

/// A step without side effects is committed with the run's next write
/// (see `NodeTask::succeed`); a step with side effects finds every step
/// before it committed.
#[tokio::test]
async fn steps_before_a_node_with_side_effects_are_committed_before_it_acts() {
    let store = concertmaster_core::InMemoryStore::new();
    let (engine, tenant, wf) = trigger_then(
        &store,
        ChecksCommitted {
            store: store.clone(),
        },
        true,
    )
    .await;
    let run = engine.start(&wf, json!({})).await.expect("starts");
    let run = engine.settled(&tenant, run).await.expect("settles");
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
}

/// Waits until the test lets it go.
struct WaitsForRelease(std::sync::Arc<tokio::sync::Notify>);

#[async_trait::async_trait]
impl concertmaster_core::Node for WaitsForRelease {
    async fn execute(
        &self,
        _: &concertmaster_core::NodeContext,
        input: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        self.0.notified().await;
        Ok(concertmaster_core::NodeOutcome::Done(input))
    }
}

#[tokio::test]
async fn a_node_that_waits_is_recorded_running_while_it_waits() {
    use concertmaster_core::store::RunStore;
    let store = concertmaster_core::InMemoryStore::new();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let (engine, tenant, wf) = trigger_then(
        &store,
        WaitsForRelease(std::sync::Arc::clone(&release)),
        false,
    )
    .await;
    let run = engine.start(&wf, json!({})).await.expect("starts");
    let running = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let records = store.node_executions(&tenant, run).await.expect("reads");
            if let Some(b) = records.into_iter().find(|r| r.node_id.as_str() == "b") {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("b is recorded while it waits");
    assert_eq!(running.status, NodeStatus::Running);
    assert_eq!(running.attempt, 1);
    assert!(running.started_at.is_some() && running.ended_at.is_none());
    // The step before it was committed first, not held until the run settles.
    let records = store.node_executions(&tenant, run).await.expect("reads");
    let a = records.iter().find(|r| r.node_id.as_str() == "a");
    assert_eq!(a.map(|a| a.status), Some(NodeStatus::Succeeded));
    release.notify_one();
    let settled = engine.settled(&tenant, run).await.expect("settles");
    assert_eq!(settled.status, RunStatus::Succeeded, "{:?}", settled.error);
    let records = store.node_executions(&tenant, run).await.expect("reads");
    let b = records
        .iter()
        .find(|r| r.node_id.as_str() == "b")
        .expect("b recorded");
    assert_eq!((b.status, b.attempt), (NodeStatus::Succeeded, 1));
}

struct ChecksNothing;

#[async_trait::async_trait]
impl concertmaster_core::Node for ChecksNothing {
    async fn execute(
        &self,
        _: &concertmaster_core::NodeContext,
        input: concertmaster_core::Ports,
    ) -> Result<concertmaster_core::NodeOutcome, concertmaster_core::NodeError> {
        Ok(concertmaster_core::NodeOutcome::Done(input))
    }
}
