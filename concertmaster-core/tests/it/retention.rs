//! The in-memory store's bound on ended runs: a host that runs for months
//! on it keeps the runs in flight and a bounded history, not every run.

use concertmaster_core::{run::RunFilter, store::RunStore, Error, InMemoryStore, RunStatus};
use serde_json::json;

use crate::support::{workflow, Harness};

#[tokio::test]
async fn the_in_memory_store_forgets_the_oldest_ended_runs_past_its_bound() {
    let store = InMemoryStore::new().keep_ended_runs(2);
    let h = Harness::with(|b| b.store(store.clone())).await;
    let tenant = h.tenant.clone();
    let asks = h
        .publish(workflow(
            "asks",
            &[
                ("start", "start", json!({})),
                ("ask", "await", json!({"prefix": "answer"})),
            ],
            &[("start", "ask")],
        ))
        .await;
    let waiting = h.engine.start(&asks, json!({})).await.unwrap();
    let run = h.engine.settled(&tenant, waiting).await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting);

    let quick = h
        .publish(workflow(
            "quick",
            &[("start", "start", json!({})), ("next", "pass", json!({}))],
            &[("start", "next")],
        ))
        .await;
    let mut ended = Vec::new();
    for _ in 0..4 {
        let id = h.engine.start(&quick, json!({})).await.unwrap();
        let run = h.engine.finished(&tenant, id).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
        ended.push(id);
    }

    for &gone in &ended[..2] {
        assert!(
            matches!(h.engine.run(&tenant, gone).await, Err(Error::RunNotFound { id, .. }) if id == gone),
            "run {gone} ended first and is forgotten"
        );
        let records = store.node_executions(&tenant, gone).await.unwrap();
        assert!(records.is_empty(), "its node records go with it");
    }
    for &kept in &ended[2..] {
        let detail = h.engine.run(&tenant, kept).await.unwrap();
        assert_eq!(detail.nodes.len(), 2, "kept with its node records");
    }
    let listed = h.engine.runs(&tenant, &RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 3, "two ended runs and the waiting one");
    assert_eq!(
        h.engine.run(&tenant, waiting).await.unwrap().run.status,
        RunStatus::Waiting,
        "a waiting run is kept however many end after it"
    );

    // Once it ends, the waiting run counts too: the older of the two kept goes.
    let cancelled = h
        .engine
        .cancel(&tenant, waiting, "no answer needed")
        .await
        .unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(matches!(
        h.engine.run(&tenant, ended[2]).await,
        Err(Error::RunNotFound { .. })
    ));
    assert!(h.engine.run(&tenant, ended[3]).await.is_ok());
    assert!(h.engine.run(&tenant, waiting).await.is_ok());
}

#[tokio::test]
async fn a_bound_set_later_counts_the_runs_that_ended_before() {
    let store = InMemoryStore::new();
    let h = Harness::with(|b| b.store(store.clone())).await;
    let tenant = h.tenant.clone();
    let quick = h
        .publish(workflow("quick", &[("start", "start", json!({}))], &[]))
        .await;
    let mut ended = Vec::new();
    for _ in 0..3 {
        let id = h.engine.start(&quick, json!({})).await.unwrap();
        h.engine.finished(&tenant, id).await.unwrap();
        ended.push(id);
    }
    let _same_store = store.clone().keep_ended_runs(1);
    let listed = h.engine.runs(&tenant, &RunFilter::default()).await.unwrap();
    assert_eq!(
        listed.iter().map(|run| run.id).collect::<Vec<_>>(),
        [ended[2]],
        "only the run that ended last is kept"
    );
}
