//! Per-tenant quotas: one tenant's burst waits in the store while another
//! tenant's runs go through.

use std::time::{Duration, Instant};

use concertmaster_core::{RunFilter, RunStatus, TenantId, WorkflowDefinition};
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
