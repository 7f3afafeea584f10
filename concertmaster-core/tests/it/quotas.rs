//! Per-tenant quotas: one tenant's burst waits in the store while another
//! tenant's runs go through.

use std::time::{Duration, Instant};

use concertmaster_core::{run::RunFilter, RunStatus, TenantId, WorkflowDefinition};
use serde_json::json;

use crate::support::{workflow, Harness};

#[tokio::test]
async fn a_burst_of_one_tenant_does_not_starve_another() {
    let h = Harness::with(|b| {
        b.max_active_runs(4)
            .max_active_runs_per_tenant(2)
            .recovery_interval(Duration::from_secs(3600))
    })
    .await;
    let (acme, globex) = (h.tenant.clone(), TenantId::new("globex"));
    let def = workflow("work", &[("step", "pass", json!({ "pauseMs": 150 }))], &[]);
    let mut published = Vec::new();
    for tenant in [&acme, &globex] {
        let def = WorkflowDefinition::from_value(def.clone()).unwrap();
        published.push(h.engine.publish(tenant, def).await.unwrap());
    }

    let mut burst = Vec::new();
    for i in 0..12 {
        burst.push(
            h.engine
                .start(&published[0], json!({ "n": i }))
                .await
                .unwrap(),
        );
    }
    let began = Instant::now();
    let mut late = Vec::new();
    for i in 0..2 {
        late.push(
            h.engine
                .start(&published[1], json!({ "n": i }))
                .await
                .unwrap(),
        );
    }
    // While the burst goes on, acme never has more than its two runs going.
    let watch = {
        let engine = h.engine.clone();
        let acme = acme.clone();
        tokio::spawn(async move {
            let mut most = 0;
            for _ in 0..40 {
                let going = engine
                    .runs(&acme, &RunFilter::status(RunStatus::Running))
                    .await
                    .unwrap()
                    .len();
                most = most.max(going);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            most
        })
    };
    for run in &late {
        let done = h.engine.finished(&globex, *run).await.unwrap();
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    }
    let globex_took = began.elapsed();
    let acme_done = h
        .engine
        .runs(&acme, &RunFilter::status(RunStatus::Succeeded))
        .await
        .unwrap()
        .len();
    assert!(
        acme_done <= 6,
        "globex's runs went through beside the burst, not after it ({acme_done} of 12 \
         done already, {globex_took:?})"
    );
    assert!(watch.await.unwrap() <= 2, "acme stays within its quota");

    // The burst itself is not lost: it drains two at a time.
    for run in burst {
        let done = h.engine.finished(&acme, run).await.unwrap();
        assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    }
}

/// A resume takes its run's lease with the wait; when the engine is full,
/// the lease is given back at once (another engine may drive the run), and
/// the run goes on here once there is room.
#[tokio::test]
async fn a_run_resumed_while_the_engine_is_full_gives_its_lease_back() {
    let h = Harness::with(|b| {
        b.max_active_runs(1)
            .recovery_interval(Duration::from_secs(3600))
    })
    .await;
    let ask = h
        .publish(workflow(
            "ask",
            &[("ask", "await", json!({ "prefix": "form" }))],
            &[],
        ))
        .await;
    let busy = h
        .publish(workflow(
            "busy",
            &[("step", "pass", json!({ "pauseMs": 400 }))],
            &[],
        ))
        .await;
    let waiting = h.engine.start(&ask, json!({})).await.unwrap();
    let run = h.engine.settled(&h.tenant, waiting).await.unwrap();
    assert_eq!(run.status, RunStatus::Waiting);
    let occupying = h.engine.start(&busy, json!({})).await.unwrap();

    let delivery = h
        .engine
        .resume(&h.tenant, &format!("form:{waiting}"), json!({ "ok": true }))
        .await
        .unwrap();
    assert_eq!(
        delivery,
        concertmaster_core::run::Delivery::Resumed(waiting)
    );
    let store = h.engine.store();
    let now = chrono::Utc::now();
    let later = now + chrono::Duration::minutes(1);
    let taken = store
        .claim_run(&h.tenant, waiting, "engine-2", later, now)
        .await
        .unwrap();
    assert!(
        taken.is_some(),
        "the lease taken with the wait was given back: the engine had no room"
    );
    store.release_run(waiting, "engine-2").await.unwrap();

    let done = h.engine.finished(&h.tenant, occupying).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.error);
    let resumed = h.engine.finished(&h.tenant, waiting).await.unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
}
