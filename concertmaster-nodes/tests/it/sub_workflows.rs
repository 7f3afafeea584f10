//! Sub-workflows that wait for people: two levels deep, across a process
//! restart, cancelled from the top, failing from the bottom.

use std::sync::Arc;

use concertmaster_core::{
    clock::{Clock, ManualClock},
    run::RunFilter,
    store::Backend,
    Run, RunId, RunStatus,
};
use concertmaster_nodes::forms::{FormsError, Submission};
use serde_json::{json, Value};

use crate::support::{answers, Harness};

/// `onboard` calls `collect`, which calls `profile`, which sends the
/// supplier profile form to one recipient and waits for the answer.
async fn publish_nested(h: &Harness, profile_tail: Value) {
    h.publish_profile_form().await;
    let mut profile = json!({
        "id": "profile", "name": "Profile",
        "nodes": [
            { "id": "start", "type": "manual" },
            { "id": "send", "type": "send_form", "config": {
                "formId": "supplier-profile", "recipients": ["ops@globex.test"] } },
            { "id": "wait", "type": "wait_for_responses", "config": {} }
        ],
        "edges": [
            { "id": "e1", "source": "start", "target": "send" },
            { "id": "e2", "source": "send", "target": "wait" }
        ]
    });
    if !profile_tail.is_null() {
        profile["nodes"].as_array_mut().unwrap().push(profile_tail);
        profile["edges"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "id": "e3", "source": "wait", "target": "tail" }));
    }
    h.publish(profile).await;
    for (id, calls, level) in [
        ("collect", "profile", "child"),
        ("onboard", "collect", "parent"),
    ] {
        h.publish(json!({
            "id": id, "name": id,
            "nodes": [
                { "id": "start", "type": "manual" },
                { "id": "sub", "type": "sub_workflow", "config": { "workflowId": calls } },
                { "id": "mark", "type": "jq", "config": {
                    "expression": format!(". + {{{level}: true}}") } }
            ],
            "edges": [
                { "id": "e1", "source": "start", "target": "sub" },
                { "id": "e2", "source": "sub", "target": "mark" }
            ]
        }))
        .await;
    }
}

/// The run of `workflow` among `runs`.
fn of<'a>(runs: &'a [Run], workflow: &str) -> &'a Run {
    runs.iter()
        .find(|r| r.workflow_id.as_str() == workflow)
        .unwrap_or_else(|| panic!("no run of {workflow} among {runs:?}"))
}

/// Starts `onboard` on a SQLite file and stops that process with all three
/// runs waiting; returns the file's directory, the top run and the token
/// of the invitation the innermost run sent.
async fn three_levels_waiting(
    profile_tail: Value,
) -> (tempfile::TempDir, ManualClock, RunId, String) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::default();
    let store = concertmaster_store::SqliteStore::open(dir.path().join("nested.db"))
        .await
        .unwrap();
    let h = Harness::on(Arc::new(store), clock.clone()).await;
    publish_nested(&h, profile_tail).await;
    let onboard = h
        .engine
        .workflow(&h.tenant, &"onboard".into(), None)
        .await
        .unwrap();
    let top = h
        .engine
        .start(&onboard, json!({ "supplier": "Globex" }))
        .await
        .unwrap();
    // The innermost run sends its invitation, then all three wait.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.outbox.messages().is_empty() {
        assert!(std::time::Instant::now() < give_up, "no invitation sent");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let runs = h.engine.runs(&h.tenant, &RunFilter::all()).await.unwrap();
    for workflow in ["onboard", "collect", "profile"] {
        let run = h
            .engine
            .settled(&h.tenant, of(&runs, workflow).id)
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Waiting, "{workflow}");
    }
    let collect = of(&runs, "collect");
    let profile = of(&runs, "profile");
    assert_eq!(collect.parent.as_ref().map(|p| p.run), Some(top));
    assert_eq!(profile.parent.as_ref().map(|p| p.run), Some(collect.id));
    let token = h.token_for(
        "ops@globex.test",
        concertmaster_nodes::forms::NotificationKind::Invitation,
    );
    h.engine.shutdown();
    (dir, clock, top, token)
}

async fn reopen(dir: &tempfile::TempDir, clock: ManualClock) -> Harness {
    let store = concertmaster_store::SqliteStore::open(dir.path().join("nested.db"))
        .await
        .unwrap();
    Harness::on(Arc::new(store) as Arc<dyn Backend>, clock).await
}

/// A new process on the same file, where the supplier answers now.
async fn answered_after_restart(
    dir: &tempfile::TempDir,
    clock: ManualClock,
    token: &str,
) -> Harness {
    let h = reopen(dir, clock).await;
    h.forms
        .submit(
            &h.engine,
            token,
            Submission::new(answers("Globex", "ops@globex.test")),
        )
        .await
        .unwrap();
    h
}

#[tokio::test]
async fn an_answer_two_levels_down_completes_every_level_after_a_restart() {
    let (dir, clock, top, token) = three_levels_waiting(Value::Null).await;

    let h = answered_after_restart(&dir, clock, &token).await;
    let done = h.engine.finished(&h.tenant, top).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);

    // The answer reached the top as if all three levels were one workflow.
    let out = h.detail(top).await;
    let items = out.output("mark").unwrap().main_items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["respondent"], json!("ops@globex.test"));
    assert_eq!(
        (items[0]["child"].clone(), items[0]["parent"].clone()),
        (json!(true), json!(true))
    );
    let runs = h.engine.runs(&h.tenant, &RunFilter::all()).await.unwrap();
    assert_eq!(runs.len(), 3, "each child started once: {runs:?}");
    assert!(runs.iter().all(|r| r.status == RunStatus::Succeeded));
}

#[tokio::test]
async fn cancelling_the_top_run_after_a_restart_cancels_both_levels_below() {
    let (dir, clock, top, token) = three_levels_waiting(Value::Null).await;

    let h = reopen(&dir, clock).await;
    let cancelled = h
        .engine
        .cancel(&h.tenant, top, "supplier withdrew")
        .await
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    let runs = h.engine.runs(&h.tenant, &RunFilter::all()).await.unwrap();
    for workflow in ["collect", "profile"] {
        let run = of(&runs, workflow);
        assert_eq!(run.status, RunStatus::Cancelled, "{workflow}");
        let error = run.error.clone().unwrap_or_default();
        assert!(
            error.contains("was cancelled: ") && error.ends_with("supplier withdrew"),
            "{error}"
        );
    }
    // The invitation of the cancelled run answers nothing any more.
    let late = h
        .forms
        .submit(
            &h.engine,
            &token,
            Submission::new(answers("Globex", "ops@globex.test")),
        )
        .await;
    assert!(
        matches!(late, Err(FormsError::Withdrawn { run }) if run == of(&runs, "profile").id),
        "{late:?}"
    );
    assert!(h.stored_responses().await.is_empty());
}

#[tokio::test]
async fn cancelling_a_cancelled_run_again_cancels_children_left_open() {
    let (dir, clock, top, _token) = three_levels_waiting(Value::Null).await;

    // As if the process stopped right after the top run was cancelled.
    let h = reopen(&dir, clock.clone()).await;
    h.engine
        .store()
        .end_run(
            &h.tenant,
            top,
            RunStatus::Cancelled,
            "withdrawn",
            clock.now(),
            None,
        )
        .await
        .unwrap();
    let open = RunFilter::status(RunStatus::Waiting);
    assert_eq!(h.engine.runs(&h.tenant, &open).await.unwrap().len(), 2);

    h.engine.cancel(&h.tenant, top, "withdrawn").await.unwrap();
    assert!(h.engine.runs(&h.tenant, &open).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_failure_two_levels_down_reaches_the_top_with_its_reason() {
    // The innermost workflow requires a field the answers lack.
    let tail = json!({ "id": "tail", "type": "map_fields", "config": {
        "mappings": [{ "to": "/duns", "from": "/data/duns", "required": true }] } });
    let (dir, clock, top, token) = three_levels_waiting(tail).await;

    let h = answered_after_restart(&dir, clock, &token).await;
    let failed = h.engine.finished(&h.tenant, top).await.unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("sub-workflow collect run")
            && error.contains("sub-workflow profile run")
            && error.contains("/duns: required"),
        "{error}"
    );
    let runs = h
        .engine
        .runs(&h.tenant, &RunFilter::status(RunStatus::Failed))
        .await
        .unwrap();
    assert_eq!(runs.len(), 3);
}
