//! Waiting runs stay on their version until moved, and move only where
//! every waiting node has a counterpart.

use concertmaster_core::{workflow::Migration, Error, RunId, RunStatus};
use serde_json::{json, Value};

use crate::support::{workflow, Harness};

/// start → a → ask (waits for `answer:<run>`) → tail…
fn flow(tail: &[(&str, &str)], extra_edges: &[(&str, &str)]) -> Value {
    let mut nodes = vec![
        ("start", "start", json!({})),
        ("a", "pass", json!({})),
        ("ask", "await", json!({ "prefix": "answer" })),
    ];
    nodes.extend(tail.iter().map(|(id, ty)| (*id, *ty, json!({}))));
    let mut edges = vec![("start", "a"), ("a", "ask")];
    edges.extend_from_slice(extra_edges);
    workflow("intake", &nodes, &edges)
}

async fn waiting_run(h: &Harness) -> RunId {
    let v1 = h
        .engine
        .workflow(&h.tenant, &"intake".into(), Some(1))
        .await
        .unwrap();
    let run = h.engine.start(&v1, json!({ "case": 7 })).await.unwrap();
    assert_eq!(
        h.engine.settled(&h.tenant, run).await.unwrap().status,
        RunStatus::Waiting
    );
    run
}

async fn answer(h: &Harness, run: RunId) -> concertmaster_core::run::RunDetail {
    h.engine
        .resume(&h.tenant, &format!("answer:{run}"), json!({ "ok": true }))
        .await
        .unwrap();
    let done = h.engine.finished(&h.tenant, run).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    h.engine.run(&h.tenant, run).await.unwrap()
}

fn trail(detail: &concertmaster_core::run::RunDetail, node: &str) -> Value {
    detail.output(node).unwrap().main_items()[0]["trail"].clone()
}

#[tokio::test]
async fn a_waiting_run_stays_on_its_version_until_moved_then_goes_on_there() {
    let h = Harness::new().await;
    h.publish(flow(&[("c", "pass")], &[("ask", "c")])).await;
    let stays = waiting_run(&h).await;
    let moves = waiting_run(&h).await;
    // Version 2 checks the answer before c, and renames nothing.
    h.publish(flow(
        &[("check", "pass"), ("c", "pass")],
        &[("ask", "check"), ("check", "c")],
    ))
    .await;

    let moved = h
        .engine
        .migrate(&h.tenant, moves, &Migration::to_version(2))
        .await
        .unwrap();
    assert_eq!(
        (moved.workflow_version, moved.status),
        (2, RunStatus::Waiting)
    );

    let kept = answer(&h, stays).await;
    assert_eq!(kept.run.workflow_version, 1);
    assert_eq!(trail(&kept, "c"), json!(["start", "a", "c"]));
    let migrated = answer(&h, moves).await;
    assert_eq!(trail(&migrated, "c"), json!(["start", "a", "check", "c"]));
    assert_eq!(h.log.attempts("a"), 2, "nothing before the wait ran again");
}

#[tokio::test]
async fn a_renamed_waiting_node_takes_its_wait_along() {
    let h = Harness::new().await;
    h.publish(flow(&[("c", "pass")], &[("ask", "c")])).await;
    let run = waiting_run(&h).await;
    h.publish(workflow(
        "intake",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            ("ask-supplier", "await", json!({ "prefix": "answer" })),
            ("c", "pass", json!({})),
        ],
        &[("start", "a"), ("a", "ask-supplier"), ("ask-supplier", "c")],
    ))
    .await;

    h.engine
        .migrate(
            &h.tenant,
            run,
            &Migration::to_version(2).rename("ask", "ask-supplier"),
        )
        .await
        .unwrap();
    let detail = answer(&h, run).await;
    assert_eq!(
        detail.output("ask-supplier").unwrap().main_items()[0]["payload"],
        json!({ "ok": true })
    );
    assert!(detail.node("ask").is_none());
    let audit = h
        .engine
        .store()
        .audit_log(
            &h.tenant,
            &concertmaster_core::store::AuditFilter::entity("run", run.to_string()),
        )
        .await
        .unwrap();
    assert!(
        audit
            .iter()
            .any(|e| e.details["migrated"] == json!({ "from": 1, "to": 2 })
                && e.details["renames"] == json!({ "ask": "ask-supplier" })),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_migration_that_does_not_fit_is_refused_with_every_reason_and_changes_nothing() {
    let h = Harness::new().await;
    h.publish(flow(&[("c", "pass")], &[("ask", "c")])).await;
    let run = waiting_run(&h).await;
    // v2: the waiting node is gone. v3: it is a pass now, and a check
    // that never ran comes before it. v4: fits.
    h.publish(workflow(
        "intake",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            ("c", "pass", json!({})),
        ],
        &[("start", "a"), ("a", "c")],
    ))
    .await;
    h.publish(workflow(
        "intake",
        &[
            ("start", "start", json!({})),
            ("a", "pass", json!({})),
            ("check", "pass", json!({})),
            ("ask", "pass", json!({})),
        ],
        &[("start", "a"), ("a", "check"), ("check", "ask")],
    ))
    .await;

    let refused = |to: u32, migration: Migration| {
        let h = &h;
        async move {
            match h.engine.migrate(&h.tenant, run, &migration).await {
                Err(Error::CannotMigrate {
                    version, problems, ..
                }) => {
                    assert_eq!(version, to);
                    problems
                }
                other => panic!("expected CannotMigrate to {to}, got {other:?}"),
            }
        }
    };
    let problems = refused(2, Migration::to_version(2)).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("waiting node ask has no counterpart in version 2"),
        "{problems:?}"
    );

    let problems = refused(3, Migration::to_version(3)).await;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.contains(
            "waiting node ask is of type await; its counterpart ask in version 3 is of type pass"
        )),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node check comes before a waiting node")),
        "{problems:?}"
    );

    let problems = refused(
        3,
        Migration::to_version(3)
            .rename("ghost", "c2")
            .rename("a", "ask"),
    )
    .await;
    assert!(
        problems
            .iter()
            .any(|p| p.contains("renamed node ghost is not in version 1")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node c2 (renamed from ghost) is not in version 3")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node ask has run in this run, so a cannot take its name")),
        "{problems:?}"
    );

    let problems = refused(1, Migration::to_version(1)).await;
    assert_eq!(problems, ["it is on version 1 already"]);
    match h
        .engine
        .migrate(&h.tenant, run, &Migration::to_version(9))
        .await
    {
        Err(err) => assert!(err.to_string().contains('9'), "{err}"),
        Ok(run) => panic!("moved to a version never published: {run:?}"),
    }

    // Nothing changed: the run waits on version 1 and finishes there.
    let detail = answer(&h, run).await;
    assert_eq!(detail.run.workflow_version, 1);
    assert_eq!(trail(&detail, "c"), json!(["start", "a", "c"]));
    let problems = refused(2, Migration::to_version(2)).await;
    assert_eq!(problems, ["it is succeeded; only waiting runs move"]);
}
