//! Re-running a finished run: from the failed node, from a chosen node or
//! from the trigger, on the pinned or the latest version.

use concertmaster_core::{
    run::{RerunFrom, RerunVersion},
    Error, NodeId, RunStatus,
};
use serde_json::{json, Value};

use crate::support::{workflow, Harness};

/// start → a → export → c, and start → side; `export` fails fatally on
/// its first `failures` attempts.
fn export_flow(failures: u32) -> Value {
    workflow(
        "export",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            (
                "export",
                "flaky",
                json!({ "failures": failures, "fatal": true }),
            ),
            ("c", "pass", json!({})),
            ("side", "pass", json!({})),
        ],
        &[
            ("start", "a"),
            ("a", "export"),
            ("export", "c"),
            ("start", "side"),
        ],
    )
}

/// A run of `waits` (start → ask, waiting for `answer:<run>`), waiting.
async fn waiting_run(h: &Harness) -> concertmaster_core::RunId {
    let waits = h
        .publish(workflow(
            "waits",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({ "prefix": "answer" })),
            ],
            &[("start", "ask")],
        ))
        .await;
    let run = h.engine.start(&waits, json!({})).await.unwrap();
    assert_eq!(
        h.engine.settled(&h.tenant, run).await.unwrap().status,
        RunStatus::Waiting
    );
    run
}

fn ids(nodes: &[&str]) -> Vec<NodeId> {
    nodes.iter().map(|n| NodeId::new(*n)).collect()
}

#[tokio::test]
async fn a_failed_run_reruns_from_the_failed_node_on_the_fixed_version() {
    let h = Harness::new().await;
    let broken = h.publish(export_flow(1)).await;
    let run = h
        .engine
        .start(&broken, json!({ "order": "A-1" }))
        .await
        .unwrap();
    let failed = h.engine.finished(&h.tenant, run).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);

    // The fix is published; the failed run continues on it where it failed.
    h.publish(export_flow(0)).await;
    let again = h
        .engine
        .rerun(&h.tenant, run, RerunFrom::Failed, RerunVersion::Latest)
        .await
        .unwrap();
    let done = h.engine.finished(&h.tenant, again).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.workflow_version, 2);
    let origin = done
        .origin
        .clone()
        .expect("the re-run says where it came from");
    assert_eq!(origin.run, run);
    assert_eq!(origin.version, 1);
    assert_eq!(origin.from, ids(&["export"]));
    let mut reused = origin.reused.clone();
    reused.sort();
    assert_eq!(reused, ids(&["a", "side", "start"]));

    // What ran before the failure ran once; the rest ran in the re-run.
    for (node, times) in [("start", 1), ("a", 1), ("side", 1), ("export", 2), ("c", 1)] {
        assert_eq!(h.log.attempts(node), times, "{node}");
    }
    let detail = h.engine.run(&h.tenant, again).await.unwrap();
    let out = &detail.output("c").unwrap().main_items()[0];
    assert_eq!(out["order"], "A-1", "the original trigger items");
    assert_eq!(
        out["trail"],
        json!(["start", "a", "c"]),
        "a's stored output"
    );
    // The original run is left as it was.
    assert_eq!(
        h.engine.run(&h.tenant, run).await.unwrap().run.status,
        RunStatus::Failed
    );
}

#[tokio::test]
async fn a_run_reruns_from_a_chosen_node_or_the_trigger_on_its_pinned_version() {
    let h = Harness::new().await;
    let chain = h
        .publish(workflow(
            "chain",
            &[
                ("start", "start", json!({})),
                ("a", "pass", json!({})),
                ("b", "pass", json!({})),
                ("c", "pass", json!({})),
            ],
            &[("start", "a"), ("a", "b"), ("b", "c")],
        ))
        .await;
    let run = h.engine.start(&chain, json!({})).await.unwrap();
    assert_eq!(
        h.engine.finished(&h.tenant, run).await.unwrap().status,
        RunStatus::Succeeded
    );
    // A later version must not be used: the re-run stays on version 1.
    h.publish(workflow("chain", &[("start", "start", json!({}))], &[]))
        .await;

    let from_b = h
        .engine
        .rerun(
            &h.tenant,
            run,
            RerunFrom::Nodes(ids(&["b"])),
            RerunVersion::Pinned,
        )
        .await
        .unwrap();
    let done = h.engine.finished(&h.tenant, from_b).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    assert_eq!(done.workflow_version, 1);
    for (node, times) in [("start", 1), ("a", 1), ("b", 2), ("c", 2)] {
        assert_eq!(h.log.attempts(node), times, "{node}");
    }

    let from_trigger = h
        .engine
        .rerun(&h.tenant, run, RerunFrom::Trigger, RerunVersion::Pinned)
        .await
        .unwrap();
    let done = h.engine.finished(&h.tenant, from_trigger).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let origin = done.origin.expect("origin");
    assert!(
        origin.from.is_empty() && origin.reused.is_empty(),
        "{origin:?}"
    );
    for (node, times) in [("start", 2), ("a", 2), ("b", 3), ("c", 3)] {
        assert_eq!(h.log.attempts(node), times, "{node}");
    }
}

#[tokio::test]
async fn a_rerun_that_cannot_be_done_is_refused_with_the_reason() {
    let h = Harness::new().await;
    let open = waiting_run(&h).await;
    let ok = h.publish(export_flow(0)).await;
    let done = h.engine.start(&ok, json!({})).await.unwrap();
    h.engine.finished(&h.tenant, done).await.unwrap();

    for (run, from, says) in [
        (open, RerunFrom::Trigger, "it has not ended (it is waiting)"),
        (done, RerunFrom::Failed, "no node of it failed"),
        (
            done,
            RerunFrom::Nodes(ids(&["nosuch"])),
            "node nosuch is not in version 1 of workflow export",
        ),
    ] {
        match h
            .engine
            .rerun(&h.tenant, run, from, RerunVersion::Pinned)
            .await
        {
            Err(err @ Error::CannotRerun { .. }) => {
                assert!(err.to_string().contains(says), "{err}")
            }
            other => panic!("expected CannotRerun ({says}), got {other:?}"),
        }
    }
    let runs = h
        .engine
        .runs(&h.tenant, &concertmaster_core::run::RunFilter::all())
        .await
        .unwrap();
    assert_eq!(runs.len(), 2, "nothing was started");
}

#[tokio::test]
async fn a_batch_reruns_what_its_filter_finds_once_per_key_bounded_and_stoppable() {
    use concertmaster_core::{
        node::CancellationToken,
        run::{RerunBatch, RunFilter},
    };

    let h = Harness::new().await;
    let broken = h.publish(export_flow(1)).await;
    let mut failed = Vec::new();
    for i in 0..7 {
        let run = h
            .engine
            .start(&broken, json!({ "order": format!("A-{i}") }))
            .await
            .unwrap();
        assert_eq!(
            h.engine.finished(&h.tenant, run).await.unwrap().status,
            RunStatus::Failed
        );
        failed.push(run);
    }
    // A run cancelled while waiting: it matches the filter below but has
    // no failed node to restart from.
    let withdrawn = waiting_run(&h).await;
    h.engine
        .cancel(&h.tenant, withdrawn, "attempt 1 withdrawn")
        .await
        .unwrap();
    h.publish(export_flow(0)).await;

    let filter =
        RunFilter::statuses([RunStatus::Failed, RunStatus::Cancelled]).error_contains("ATTEMPT 1");
    let batch = |at_most| {
        RerunBatch::new(filter.clone(), RerunFrom::Failed, RerunVersion::Latest)
            .at_most(at_most)
            .once_per("deploy-42")
    };
    let go = CancellationToken::new();

    // Stopped before it began: nothing happens.
    let stopped = CancellationToken::new();
    stopped.cancel();
    let report = h
        .engine
        .rerun_batch(&h.tenant, &batch(100), &stopped)
        .await
        .unwrap();
    assert!(report.cancelled && report.rerun.is_empty(), "{report:?}");

    // Bounded: four runs (newest first), and it says more are left.
    let first = h
        .engine
        .rerun_batch(&h.tenant, &batch(4), &go)
        .await
        .unwrap();
    assert!(first.more && !first.cancelled, "{first:?}");
    assert_eq!(first.refused.len(), 1, "{first:?}");
    assert_eq!(first.refused[0].0, withdrawn);
    assert!(first.refused[0].1.contains("no node of it failed"));
    let originals: Vec<_> = first.rerun.iter().map(|(old, _)| *old).collect();
    assert_eq!(originals, vec![failed[6], failed[5], failed[4]]);

    // Called again with the same key: goes on, and what was done stays done.
    let second = h
        .engine
        .rerun_batch(&h.tenant, &batch(100), &go)
        .await
        .unwrap();
    assert!(!second.more && !second.cancelled, "{second:?}");
    assert_eq!(second.done_before, first.rerun);
    let originals: Vec<_> = second.rerun.iter().map(|(old, _)| *old).collect();
    assert_eq!(originals, vec![failed[3], failed[2], failed[1], failed[0]]);

    for (old, new) in first.rerun.iter().chain(&second.rerun) {
        let done = h.engine.finished(&h.tenant, *new).await.unwrap();
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
        assert_eq!(done.workflow_version, 2);
        assert_eq!(done.origin.map(|o| o.run), Some(*old));
    }
    let third = h
        .engine
        .rerun_batch(&h.tenant, &batch(100), &go)
        .await
        .unwrap();
    assert!(
        third.rerun.is_empty() && third.done_before.len() == 7,
        "{third:?}"
    );
    // Seven originals, the cancelled run and one re-run each.
    let all = h.engine.runs(&h.tenant, &RunFilter::all()).await.unwrap();
    assert_eq!(all.len(), 15);
}
